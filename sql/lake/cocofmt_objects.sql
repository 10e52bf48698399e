-- Boxes of a COCO-format instances document (table cocofmt_doc) as candidate object rows.
-- Grain: one row per element of annotations[]. bbox is [x, y, w, h] in pixels (top-left origin).
-- label = categories[].name of category_id; iscrowd=1 marks a group box (kept, flagged is_group);
-- Objects365's isfake/isreflected become flags 'fake'/'reflected'.
-- Parameters: $source, $file, $key_prefix, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH a AS (
    SELECT unnest(annotations) AS a, generate_subscripts(annotations, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
),
cat AS (
    SELECT c.id AS category_id, any_value(c.name) AS name
    FROM (SELECT unnest(categories) AS c FROM cocofmt_doc)
    GROUP BY ALL
)
SELECT
    'objects' AS entity,
    $key_prefix || '_' || CAST(TRY_CAST(a.image_id AS BIGINT) AS VARCHAR) AS image_key,
    $source AS source,
    a.id AS box_id,
    a.bbox[1] AS c0, a.bbox[2] AS c1, a.bbox[3] AS c2, a.bbox[4] AS c3,
    'xywh' AS coords,
    cat.name AS label,
    CAST(NULL AS VARCHAR[]) AS attributes,
    a.iscrowd AS is_group,
    list_filter([CASE WHEN a.isfake IN ('1', 'true') THEN 'fake' END,
                 CASE WHEN a.isreflected IN ('1', 'true') THEN 'reflected' END], lambda x: x IS NOT NULL) AS flags,
    $file AS file,
    'annotations[' || idx || ']' AS locator,
    idx AS ord,
    CASE
        WHEN TRY_CAST(a.image_id AS BIGINT) IS NULL THEN 'invalid_number'
        WHEN a.bbox IS NULL OR len(a.bbox) <> 4 THEN 'invalid_box'
        WHEN cat.name IS NULL THEN 'unknown_label'
    END AS reason
FROM a
LEFT JOIN cat ON cat.category_id = a.category_id
