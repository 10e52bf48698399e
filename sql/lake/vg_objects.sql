-- Visual Genome objects.json (top-level array per image, streamed) as candidate object boxes, with
-- the attribute list joined from vg_attributes by object_id. Boxes use w/h here (regions use
-- width/height); `names` is a list whose first entry is the label (older files: `name`).
-- Strict types (DuckDB JSON): image id and object_id integers; x, y, w, h numbers; the label a
-- string. Anything else -> wrong_type:<field>=<kind seen> (a string "7" is never read as 7).
-- Grain: one row per object. Locator: $[<array index>].objects[<index>].
-- Parameters: $path, $file.
WITH img AS (
    SELECT *
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'JSON', 'id': 'JSON',
                   'objects': 'STRUCT(object_id JSON, id JSON, x JSON, y JSON, w JSON, h JSON, names JSON, name JSON)[]'}
    ) WITH ORDINALITY AS t(image_id, id, objects, n)
),
o AS (
    SELECT coalesce(image_id, id) AS img_id, CASE WHEN image_id IS NULL AND id IS NOT NULL THEN 'id' ELSE 'image_id' END AS id_field,
           n, unnest(objects) AS o, generate_subscripts(objects, 1) - 1 AS k
    FROM img
),
l AS (
    SELECT *, coalesce(o.object_id, o.id) AS oid,
           CASE WHEN o.names IS NOT NULL THEN o.names -> '$[0]' ELSE o.name END AS lbl,
           CASE WHEN o.names IS NOT NULL THEN 'names[0]' ELSE 'name' END AS lbl_field
    FROM o
)
SELECT
    'objects' AS entity,
    'vg_' || CASE WHEN json_kind(img_id) = 'integer' THEN CAST(img_id AS VARCHAR) END AS image_key,
    'vg' AS source,
    json_text(oid) AS box_id,
    json_text(o.x) AS c0, json_text(o.y) AS c1, json_text(o.w) AS c2, json_text(o.h) AS c3,
    'xywh' AS coords,
    CASE WHEN json_kind(lbl) = 'string' THEN lbl ->> '$' END AS label,
    a.attributes AS attributes,
    CAST(NULL AS VARCHAR) AS is_group,
    CAST([] AS VARCHAR[]) AS flags,
    $file AS file,
    '[' || (n - 1) || '].objects[' || k || ']' AS locator,
    (n - 1) * 100000 + k AS ord,
    coalesce(json_check(id_field, img_id, ['integer']), json_check('object_id', oid, ['integer']),
             json_check('x', o.x, ['number', 'integer']), json_check('y', o.y, ['number', 'integer']),
             json_check('w', o.w, ['number', 'integer']), json_check('h', o.h, ['number', 'integer']),
             json_check('names', o.names, ['array', 'null']),
             json_check(lbl_field, lbl, ['string', 'null'])) AS reason
FROM l
LEFT JOIN vg_attributes AS a ON a.object_id = json_text(l.oid)
