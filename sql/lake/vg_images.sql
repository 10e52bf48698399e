-- Visual Genome image_data.json (top-level array, streamed) as candidate image rows.
-- Grain: one row per array element. v1.0 files use `id` instead of `image_id`; both are read.
-- Path: $image_root/<VG_100K or VG_100K_2, taken from the url>/<image_id>.jpg.
-- coco_id / flickr_id are kept: the VG<->COCO link the later dedup and leak removal need.
-- Parameters: $path, $file, $image_root.
WITH r AS (
    SELECT *
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'VARCHAR', 'id': 'VARCHAR', 'width': 'VARCHAR', 'height': 'VARCHAR',
                   'url': 'VARCHAR', 'coco_id': 'VARCHAR', 'flickr_id': 'VARCHAR'}
    ) WITH ORDINALITY AS t(image_id, id, width, height, url, coco_id, flickr_id, n)
)
SELECT
    'vg_' || CAST(TRY_CAST(coalesce(image_id, id) AS BIGINT) AS VARCHAR) AS image_key,
    'vg' AS source,
    'train' AS split,
    coalesce(image_id, id) AS source_id,
    $image_root || '/' || coalesce(nullif(regexp_extract(url, '(VG_100K[^/]*)/[^/]*$', 1), ''), 'VG_100K')
        || '/' || coalesce(image_id, id) || '.jpg' AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    url,
    width,
    height,
    coco_id,
    flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    '[' || (n - 1) || ']' AS locator,
    n - 1 AS ord,
    CAST(NULL AS VARCHAR) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM r
