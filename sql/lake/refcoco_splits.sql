-- RefCOCO+ split membership from one reference fine-tuning file (refcoco+_<split>.json: a JSON array
-- of {image, text, ref_id}, one element per expression, `image` = train2014/COCO_train2014_<id>.jpg)
-- as candidate split rows: dataset 'refcoco+', the file's split, image_key coco_<id> (RefCOCO images
-- are COCO train2014 images, keyed like the COCO source and Karpathy COCO).
-- Many expressions share an image: good records are grouped to ONE row per image (locator = its
-- first record); a record whose image name holds no COCO id is its own row, reason invalid_id; a
-- split other than train / val / testA / testB (REFER's names) -> invalid_split.
-- Grain: one row per (image, file), plus one per unusable record.
-- Parameters: $path, $file, $split.
WITH r AS (
    SELECT n - 1 AS idx, image,
           TRY_CAST(regexp_extract(image, '(?:^|/)COCO_[a-z]+[0-9]{4}_0*([0-9]+)\.jpg$', 1) AS BIGINT) AS coco_id
    FROM read_json($path, format = 'array', columns = {'image': 'VARCHAR', 'text': 'VARCHAR', 'ref_id': 'VARCHAR'})
        WITH ORDINALITY AS t(image, text, ref_id, n)
),
g AS (
    SELECT coco_id, min(idx) AS idx FROM r WHERE coco_id IS NOT NULL GROUP BY coco_id
    UNION ALL
    SELECT NULL, idx FROM r WHERE coco_id IS NULL
)
SELECT
    'refcoco+' AS dataset,
    $split AS split,
    'coco_' || coco_id AS image_key,
    CAST(coco_id AS VARCHAR) AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    $file AS file,
    '[' || idx || ']' AS locator,
    idx AS ord,
    CASE
        WHEN coco_id IS NULL THEN 'invalid_id'
        WHEN $split NOT IN ('train', 'val', 'testA', 'testB') THEN 'invalid_split'
    END AS reason
FROM g
