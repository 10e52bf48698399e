-- Empty candidate-splits table (downstream evaluation split membership).
-- Grain: one row per (dataset, image) record of a split file.
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS dataset, CAST(NULL AS VARCHAR) AS split, CAST(NULL AS VARCHAR) AS image_key,
    CAST(NULL AS VARCHAR) AS coco_id, CAST(NULL AS VARCHAR) AS flickr_id,
    CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator, CAST(NULL AS BIGINT) AS ord,
    CAST(NULL AS VARCHAR) AS reason
WHERE false
