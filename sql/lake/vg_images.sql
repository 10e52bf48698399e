-- Visual Genome image_data.json (top-level array, streamed) as candidate image rows.
-- Grain: one row per array element. v1.0 files use `id` instead of `image_id`; both are read.
-- Strict types (fields read as DuckDB JSON): the id an integer; width/height integers; url a string;
-- coco_id/flickr_id integers or null. Anything else -> wrong_type:<field>=<kind seen>.
-- Path: $image_root/<VG_100K or VG_100K_2, taken from the url>/<image_id>.jpg.
-- coco_id / flickr_id are kept: the VG<->COCO link the later dedup and leak removal need.
-- Parameters: $path, $file, $image_root.
WITH r AS (
    SELECT *, CASE WHEN image_id IS NULL AND id IS NOT NULL THEN 'id' ELSE 'image_id' END AS id_field,
           coalesce(image_id, id) AS iid
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'JSON', 'id': 'JSON', 'width': 'JSON', 'height': 'JSON',
                   'url': 'JSON', 'coco_id': 'JSON', 'flickr_id': 'JSON'}
    ) WITH ORDINALITY AS t(image_id, id, width, height, url, coco_id, flickr_id, n)
),
k AS (
    SELECT *, CASE WHEN json_kind(iid) = 'integer' THEN CAST(iid AS VARCHAR) END AS key_id,
           CASE WHEN json_kind(url) = 'string' THEN url ->> '$' END AS url_text
    FROM r
)
SELECT
    'vg_' || key_id AS image_key,
    'vg' AS source,
    'train' AS split,
    json_text(iid) AS source_id,
    $image_root || '/' || coalesce(nullif(regexp_extract(url_text, '(VG_100K[^/]*)/[^/]*$', 1), ''), 'VG_100K')
        || '/' || key_id || '.jpg' AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    url_text AS url,
    json_text(width) AS width,
    json_text(height) AS height,
    json_text(coco_id) AS coco_id,
    json_text(flickr_id) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    '[' || (n - 1) || ']' AS locator,
    n - 1 AS ord,
    coalesce(json_check(id_field, iid, ['integer']), json_check('width', width, ['integer']),
             json_check('height', height, ['integer']), json_check('url', url, ['string', 'null']),
             json_check('coco_id', coco_id, ['integer', 'null']),
             json_check('flickr_id', flickr_id, ['integer', 'null'])) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM k
