-- RefCOCO+ split membership from one reference fine-tuning file (refcoco+_<split>.json: a JSON array
-- of {image, text, ref_id}, one element per expression, `image` = train2014/COCO_train2014_<id>.jpg)
-- as candidate split rows: dataset 'refcoco+', the file's split, image_key coco_<id> (RefCOCO images
-- are COCO train2014 images, keyed like the COCO source and Karpathy COCO).
-- Many expressions share an image: good records are grouped to ONE row per image (locator = its
-- first record); a record whose image name holds no COCO id is its own row, reason invalid_id; a
-- split other than train / val / testA / testB (REFER's names) -> invalid_split.
-- Strict types (fields read as DuckDB JSON; all three are required by the grounding reader,
-- xvlm/data/downstream/grounding.py): image and text strings, ref_id an integer; anything else ->
-- wrong_type:<field>=<kind seen> (null or absent: =null), per record, its own row like invalid_id.
-- Grain: one row per (image, file), plus one per unusable record.
-- Parameters: $path, $file, $split.
WITH j AS (
    SELECT n - 1 AS idx, image, text, ref_id,
           coalesce(json_check('image', image, ['string']), json_check('text', text, ['string']),
                    json_check('ref_id', ref_id, ['integer'])) AS type_reason
    FROM read_json($path, format = 'array', columns = {'image': 'JSON', 'text': 'JSON', 'ref_id': 'JSON'})
        WITH ORDINALITY AS t(image, text, ref_id, n)
),
r AS (
    SELECT idx, type_reason,
           CASE WHEN type_reason IS NULL THEN TRY_CAST(regexp_extract(image ->> '$',
               '(?:^|/)COCO_[a-z]+[0-9]{4}_0*([0-9]+)\.jpg$', 1) AS BIGINT) END AS coco_id
    FROM j
),
g AS (
    SELECT coco_id, min(idx) AS idx, CAST(NULL AS VARCHAR) AS type_reason FROM r WHERE coco_id IS NOT NULL GROUP BY coco_id
    UNION ALL
    SELECT NULL, idx, type_reason FROM r WHERE coco_id IS NULL
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
        WHEN type_reason IS NOT NULL THEN type_reason
        WHEN coco_id IS NULL THEN 'invalid_id'
        WHEN $split NOT IN ('train', 'val', 'testA', 'testB') THEN 'invalid_split'
    END AS reason
FROM g
