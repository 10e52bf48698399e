-- Empty table of lines the CSV/TSV reader rejected as a whole (bad encoding, wrong column count).
-- Grain: one row per (rejected line, entity it would have fed).
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS entity, CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator,
    CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS raw
WHERE false
