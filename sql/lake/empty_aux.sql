-- Empty table of the records of lookup files (OpenImages class names, VG attributes elements): they
-- load no lake table of their own but are counted like any record (entity 'classes' / 'attributes'),
-- each with its outcome: reason NULL = used, else quarantined with that reason.
-- Grain: one row per lookup record. Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS entity, CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator,
    CAST(NULL AS BIGINT) AS ord, CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS raw
WHERE false
