-- Visual Genome region_descriptions.json (top-level array, one element per image, streamed) as
-- candidate region boxes. Quirks handled here: the image id is under `id` (not `image_id`), boxes use
-- width/height (objects use w/h), older files name the region id `id`.
-- Strict types (fields read as DuckDB JSON): the image id and region_id integers; x, y, width, height
-- numbers; phrase a string (or null -> empty_text later). Anything else -> wrong_type:<field>=<kind
-- seen>, per region (a string "7" is never read as 7). Keep in step with vg_regions_fused.sql.
-- Grain: one row per region. Locator: $[<array index>].regions[<index>].
-- Parameters: $path, $file.
WITH img AS (
    SELECT *
    FROM read_json(
        $path, format = 'array',
        columns = {'id': 'JSON', 'image_id': 'JSON',
                   'regions': 'STRUCT(region_id JSON, id JSON, image_id JSON, x JSON, y JSON, width JSON, height JSON, phrase JSON)[]'}
    ) WITH ORDINALITY AS t(id, image_id, regions, n)
),
r AS (
    SELECT coalesce(id, image_id) AS img_id, CASE WHEN id IS NULL AND image_id IS NOT NULL THEN 'image_id' ELSE 'id' END AS id_field,
           n, unnest(regions) AS r, generate_subscripts(regions, 1) - 1 AS k
    FROM img
),
t AS (  -- each value's JSON text once (the fast paths of json_int_check / json_num_check)
    SELECT *, CAST(img_id AS VARCHAR) AS img_txt, CAST(coalesce(r.region_id, r.id) AS VARCHAR) AS rid_txt,
           CAST(r.phrase AS VARCHAR) AS ph_txt
    FROM r
)
SELECT
    'regions' AS entity,
    'vg_' || CASE WHEN json_kind(img_id) = 'integer' THEN CAST(img_id AS VARCHAR) END AS image_key,
    'vg' AS source,
    json_text(coalesce(r.region_id, r.id)) AS box_id,
    json_text(r.x) AS c0, json_text(r.y) AS c1, json_text(r.width) AS c2, json_text(r.height) AS c3,
    'xywh' AS coords,
    CASE WHEN starts_with(ph_txt, '"') THEN r.phrase ->> '$' END AS label,
    CAST(NULL AS VARCHAR[]) AS attributes,
    CAST(NULL AS VARCHAR) AS is_group,
    CAST([] AS VARCHAR[]) AS flags,
    $file AS file,
    '[' || (n - 1) || '].regions[' || k || ']' AS locator,
    (n - 1) * 100000 + k AS ord,
    coalesce(json_int_check(id_field, img_id, img_txt), json_int_check('region_id', coalesce(r.region_id, r.id), rid_txt),
             json_num_check('x', r.x, TRY_CAST(CAST(r.x AS VARCHAR) AS DOUBLE)),
             json_num_check('y', r.y, TRY_CAST(CAST(r.y AS VARCHAR) AS DOUBLE)),
             json_num_check('width', r.width, TRY_CAST(CAST(r.width AS VARCHAR) AS DOUBLE)),
             json_num_check('height', r.height, TRY_CAST(CAST(r.height AS VARCHAR) AS DOUBLE)),
             CASE WHEN NOT starts_with(ph_txt, '"') THEN json_check('phrase', r.phrase, ['string', 'null']) END) AS reason
FROM t
