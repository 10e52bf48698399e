-- Lake table `quarantine`: every row of one source that was read but not loaded, with its reason.
-- Grain: one row per (quarantined record, entity). raw = the record as read (JSON of its fields, or
-- the CSV line). Parameters: $source.
SELECT $source AS source, entity, file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM (
    SELECT 'images' AS entity, file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM t_images WHERE reason IS NOT NULL
    UNION ALL
    SELECT 'captions', file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM t_captions WHERE reason IS NOT NULL
    UNION ALL
    SELECT entity, file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM t_boxes WHERE reason IS NOT NULL
    UNION ALL
    SELECT 'splits', file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM t_splits WHERE reason IS NOT NULL
    UNION ALL
    SELECT entity, file, locator, reason, CAST(raw AS VARCHAR) AS raw FROM cand_rejects
    UNION ALL
    SELECT entity, file, locator, reason, raw FROM cand_aux WHERE reason IS NOT NULL
)
