-- Flickr30K images from Karpathy's dataset_flickr30k.json (table karpathy_doc); split = Karpathy split.
-- Grain: one row per element of images[]. Key flickr30k_<numeric file name>. Strict types: filename
-- and split strings, imgid an integer; else wrong_type:<field>=<kind>.
-- Parameters: $file, $image_dir.
WITH im AS (SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 AS idx FROM karpathy_doc),
t AS (
    SELECT i, idx, CASE WHEN json_kind(i.filename) = 'string' THEN i.filename ->> '$' END AS filename,
           coalesce(json_check('filename', i.filename, ['string']), json_check('imgid', i.imgid, ['integer']),
                    json_check('split', i.split, ['string'])) AS type_reason
    FROM im
)
SELECT
    'flickr30k_' || CAST(TRY_CAST(regexp_extract(filename, '^(\d+)\.jpg$', 1) AS BIGINT) AS VARCHAR) AS image_key,
    'flickr30k' AS source,
    CASE WHEN json_kind(i.split) = 'string' THEN i.split ->> '$' END AS split,
    json_text(i.imgid) AS source_id,
    $image_dir || '/' || filename AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    CAST(NULL AS VARCHAR) AS url,
    CAST(NULL AS VARCHAR) AS width,
    CAST(NULL AS VARCHAR) AS height,
    CAST(NULL AS VARCHAR) AS coco_id,
    regexp_extract(filename, '^(\d+)\.jpg$', 1) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'images[' || idx || ']' AS locator,
    idx AS ord,
    type_reason AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM t
