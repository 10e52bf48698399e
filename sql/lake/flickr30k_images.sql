-- Flickr30K images from Karpathy's dataset_flickr30k.json (table karpathy_doc); split = Karpathy split.
-- Grain: one row per element of images[]. Key flickr30k_<numeric file name>.
-- Parameters: $file, $image_dir.
WITH im AS (SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 AS idx FROM karpathy_doc)
SELECT
    'flickr30k_' || CAST(TRY_CAST(regexp_extract(i.filename, '^(\d+)\.jpg$', 1) AS BIGINT) AS VARCHAR) AS image_key,
    'flickr30k' AS source,
    i.split AS split,
    i.imgid AS source_id,
    $image_dir || '/' || i.filename AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    CAST(NULL AS VARCHAR) AS url,
    CAST(NULL AS VARCHAR) AS width,
    CAST(NULL AS VARCHAR) AS height,
    CAST(NULL AS VARCHAR) AS coco_id,
    regexp_extract(i.filename, '^(\d+)\.jpg$', 1) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'images[' || idx || ']' AS locator,
    idx AS ord,
    CAST(NULL AS VARCHAR) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM im
