-- Visual Genome objects.json (top-level array per image, streamed) as candidate object boxes, with
-- the attribute list joined from vg_attributes by object_id. Boxes use w/h here (regions use
-- width/height); `names` is a list whose first entry is the label.
-- Grain: one row per object. Locator: $[<array index>].objects[<index>].
-- Parameters: $path, $file.
WITH img AS (
    SELECT *
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'VARCHAR', 'id': 'VARCHAR',
                   'objects': 'STRUCT(object_id VARCHAR, id VARCHAR, x VARCHAR, y VARCHAR, w VARCHAR, h VARCHAR, names VARCHAR[], name VARCHAR)[]'}
    ) WITH ORDINALITY AS t(image_id, id, objects, n)
),
o AS (
    SELECT coalesce(image_id, id) AS img_id, n, unnest(objects) AS o, generate_subscripts(objects, 1) - 1 AS k
    FROM img
)
SELECT
    'objects' AS entity,
    'vg_' || CAST(TRY_CAST(img_id AS BIGINT) AS VARCHAR) AS image_key,
    'vg' AS source,
    coalesce(o.object_id, o.id) AS box_id,
    o.x AS c0, o.y AS c1, o.w AS c2, o.h AS c3,
    'xywh' AS coords,
    coalesce(o.names[1], o.name) AS label,
    a.attributes AS attributes,
    CAST(NULL AS VARCHAR) AS is_group,
    CAST([] AS VARCHAR[]) AS flags,
    $file AS file,
    '[' || (n - 1) || '].objects[' || k || ']' AS locator,
    (n - 1) * 100000 + k AS ord,
    CASE WHEN TRY_CAST(img_id AS BIGINT) IS NULL THEN 'invalid_number' END AS reason
FROM o
LEFT JOIN vg_attributes AS a ON a.object_id = coalesce(o.object_id, o.id)
