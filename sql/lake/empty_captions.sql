-- Empty candidate-captions table.
-- Grain: one row per caption record read from a source file.
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS image_key, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS split,
    CAST(NULL AS VARCHAR) AS caption_id, CAST(NULL AS VARCHAR) AS caption,
    CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator, CAST(NULL AS BIGINT) AS ord,
    CAST(NULL AS VARCHAR) AS reason
WHERE false
