-- Visual Genome attributes.json (top-level array per image, streamed) reduced to one attribute list
-- per object_id. Objects without an `attributes` key keep NULL (a real VG quirk; NULL = not annotated,
-- [] = annotated as none).
-- Grain: one row per object_id.
-- Parameters: $path.
WITH img AS (
    SELECT unnest(attributes) AS o
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'VARCHAR',
                   'attributes': 'STRUCT(object_id VARCHAR, attributes VARCHAR[])[]'}
    )
)
SELECT o.object_id AS object_id, first(o.attributes) AS attributes
FROM img
GROUP BY o.object_id
