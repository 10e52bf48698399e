-- Karpathy split membership (table karpathy_doc) as candidate split rows, the list the shard step
-- uses to remove downstream val/test images from pre-training. COCO rows are keyed by cocoid
-- (coco_<cocoid>, the same key as the COCO source, since 2014 and 2017 share image ids); Flickr30K rows
-- by the numeric file name (flickr30k_<id>). `restval` is kept as written (it is train for everyone).
-- Strict types: cocoid an integer (COCO), filename and split strings; else wrong_type:<field>=<kind>.
-- Grain: one row per element of images[].
-- Parameters: $dataset ('coco' | 'flickr30k'), $file, $idx_base (elements before this document's first:
-- a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH im AS (SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 + $idx_base AS idx FROM karpathy_doc),
k AS (
    SELECT i, idx,
           CASE WHEN $dataset = 'coco' AND json_kind(i.cocoid) = 'integer' THEN CAST(CAST(i.cocoid AS VARCHAR) AS BIGINT) END AS coco_id,
           CASE WHEN $dataset = 'flickr30k' AND json_kind(i.filename) = 'string'
                THEN TRY_CAST(regexp_extract(i.filename ->> '$', '^(\d+)\.jpg$', 1) AS BIGINT) END AS flickr_id,
           CASE WHEN json_kind(i.split) = 'string' THEN i.split ->> '$' END AS split,
           coalesce(CASE WHEN $dataset = 'coco' THEN json_check('cocoid', i.cocoid, ['integer'])
                         ELSE json_check('filename', i.filename, ['string']) END,
                    json_check('split', i.split, ['string'])) AS type_reason
    FROM im
)
SELECT
    $dataset AS dataset,
    split,
    CASE WHEN $dataset = 'coco' THEN 'coco_' || coco_id ELSE 'flickr30k_' || flickr_id END AS image_key,
    CAST(coco_id AS VARCHAR) AS coco_id,
    CAST(flickr_id AS VARCHAR) AS flickr_id,
    $file AS file,
    'images[' || idx || ']' AS locator,
    idx AS ord,
    CASE
        WHEN type_reason IS NOT NULL THEN type_reason
        WHEN coalesce(coco_id, flickr_id) IS NULL THEN 'invalid_id'
        WHEN split NOT IN ('train', 'restval', 'val', 'test') THEN 'invalid_split'
    END AS reason
FROM k
