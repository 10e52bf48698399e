-- Empty object_id -> attributes table, for a VG source configured without attributes.json.
-- Grain: one row per object_id. Parameters: none.
SELECT CAST(NULL AS VARCHAR) AS object_id, CAST(NULL AS VARCHAR[]) AS attributes WHERE false
