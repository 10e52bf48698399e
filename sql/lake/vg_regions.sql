-- Visual Genome region_descriptions.json (top-level array, one element per image, streamed) as
-- candidate region boxes. Quirks handled here: the image id is under `id` (not `image_id`), boxes use
-- width/height (objects use w/h), older files name the region id `id`. Coordinates stay text until
-- final_boxes, where a string where a number belongs is quarantined per region.
-- Grain: one row per region. Locator: $[<array index>].regions[<index>].
-- Parameters: $path, $file.
WITH img AS (
    SELECT *
    FROM read_json(
        $path, format = 'array',
        columns = {'id': 'VARCHAR', 'image_id': 'VARCHAR',
                   'regions': 'STRUCT(region_id VARCHAR, id VARCHAR, image_id VARCHAR, x VARCHAR, y VARCHAR, width VARCHAR, height VARCHAR, phrase VARCHAR)[]'}
    ) WITH ORDINALITY AS t(id, image_id, regions, n)
),
r AS (
    SELECT coalesce(id, image_id) AS img_id, n, unnest(regions) AS r, generate_subscripts(regions, 1) - 1 AS k
    FROM img
)
SELECT
    'regions' AS entity,
    'vg_' || CAST(TRY_CAST(img_id AS BIGINT) AS VARCHAR) AS image_key,
    'vg' AS source,
    coalesce(r.region_id, r.id) AS box_id,
    r.x AS c0, r.y AS c1, r.width AS c2, r.height AS c3,
    'xywh' AS coords,
    r.phrase AS label,
    CAST(NULL AS VARCHAR[]) AS attributes,
    CAST(NULL AS VARCHAR) AS is_group,
    CAST([] AS VARCHAR[]) AS flags,
    $file AS file,
    '[' || (n - 1) || '].regions[' || k || ']' AS locator,
    (n - 1) * 100000 + k AS ord,
    CASE WHEN TRY_CAST(img_id AS BIGINT) IS NULL THEN 'invalid_number' END AS reason
FROM r
