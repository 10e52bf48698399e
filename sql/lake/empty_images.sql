-- Empty candidate-images table (the schema every source's image parse must produce).
-- Grain: one row per image record read from a source file. Raw values stay VARCHAR until final_images.
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS image_key, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS split,
    CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS VARCHAR) AS path, CAST(NULL AS VARCHAR) AS tar_key,
    CAST(NULL AS VARCHAR) AS url, CAST(NULL AS VARCHAR) AS width, CAST(NULL AS VARCHAR) AS height,
    CAST(NULL AS VARCHAR) AS coco_id, CAST(NULL AS VARCHAR) AS flickr_id, CAST(NULL AS VARCHAR) AS sha256,
    CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator, CAST(NULL AS BIGINT) AS ord,
    CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS detail
WHERE false
