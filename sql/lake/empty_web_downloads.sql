-- Empty download table, for a web source whose img2dataset folder holds no parquet files yet.
-- Grain: one row per url. Parameters: none.
SELECT CAST(NULL AS VARCHAR) AS url, CAST(NULL AS VARCHAR) AS key, CAST(NULL AS VARCHAR) AS status,
       CAST(NULL AS VARCHAR) AS error_message, CAST(NULL AS BIGINT) AS width, CAST(NULL AS BIGINT) AS height,
       CAST(NULL AS VARCHAR) AS sha256, CAST(NULL AS VARCHAR) AS tar_path
WHERE false
