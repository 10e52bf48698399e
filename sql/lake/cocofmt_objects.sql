-- Boxes of a COCO-format instances document (table cocofmt_doc) as candidate object rows.
-- Grain: one row per element of annotations[]. bbox is [x, y, w, h] in pixels (top-left origin).
-- label = categories[].name of category_id (the first record of that id); iscrowd=1 marks a group box (kept, flagged is_group);
-- Objects365's isfake/isreflected become flags 'fake'/'reflected'.
-- Strict types: id, image_id, category_id integers; bbox an array of 4 finite numbers (a string
-- coordinate "22.93" is wrong_type:bbox[k]=string, k 0-based); iscrowd/isfake/isreflected integer,
-- boolean or null. Anything else -> wrong_type:<field>=<kind seen>; a bbox of another length -> invalid_box.
-- Parameters: $source, $file, $key_prefix, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH a AS (
    SELECT unnest(annotations) AS a, generate_subscripts(annotations, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
),
cat AS (  -- a repeated id takes its first record's name (the others: duplicate_id, cocofmt_categories_aux.sql)
    SELECT json_text(c.id) AS category_id, arg_min(c.name ->> '$', i) AS name
    FROM (SELECT unnest(categories) AS c, generate_subscripts(categories, 1) AS i FROM cocofmt_doc)
    WHERE json_kind(c.id) = 'integer' AND json_kind(c.name) = 'string'
    GROUP BY ALL
),
b AS (
    SELECT a, idx,
           CASE WHEN json_kind(a.bbox) = 'array' THEN json_extract(a.bbox, ['$[0]', '$[1]', '$[2]', '$[3]']) END AS c,
           CASE WHEN json_kind(a.bbox) = 'array' THEN json_array_length(a.bbox) END AS n_c
    FROM a
)
SELECT
    'objects' AS entity,
    $key_prefix || '_' || CASE WHEN json_kind(a.image_id) = 'integer' THEN CAST(a.image_id AS VARCHAR) END AS image_key,
    $source AS source,
    json_text(a.id) AS box_id,
    json_text(c[1]) AS c0, json_text(c[2]) AS c1, json_text(c[3]) AS c2, json_text(c[4]) AS c3,
    'xywh' AS coords,
    cat.name AS label,
    CAST(NULL AS VARCHAR[]) AS attributes,
    json_text(a.iscrowd) AS is_group,
    list_filter([CASE WHEN json_text(a.isfake) IN ('1', 'true') THEN 'fake' END,
                 CASE WHEN json_text(a.isreflected) IN ('1', 'true') THEN 'reflected' END], lambda x: x IS NOT NULL) AS flags,
    $file AS file,
    'annotations[' || idx || ']' AS locator,
    idx AS ord,
    coalesce(
        json_check('id', a.id, ['integer']), json_check('image_id', a.image_id, ['integer']),
        json_check('bbox', a.bbox, ['array']),
        CASE WHEN n_c <> 4 THEN 'invalid_box' END,
        json_check('bbox[0]', c[1], ['number', 'integer']), json_check('bbox[1]', c[2], ['number', 'integer']),
        json_check('bbox[2]', c[3], ['number', 'integer']), json_check('bbox[3]', c[4], ['number', 'integer']),
        json_check('category_id', a.category_id, ['integer']),
        json_check('iscrowd', a.iscrowd, ['integer', 'boolean', 'null']),
        json_check('isfake', a.isfake, ['integer', 'boolean', 'null']),
        json_check('isreflected', a.isreflected, ['integer', 'boolean', 'null']),
        CASE WHEN cat.name IS NULL THEN 'unknown_label' END
    ) AS reason
FROM b
LEFT JOIN cat ON cat.category_id = json_text(a.category_id)
