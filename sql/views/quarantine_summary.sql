-- View quarantine_summary in lake.duckdb: quarantined rows counted by source, entity and reason.
-- Grain: one row per (source, entity, reason). Parameters: none.
SELECT source, entity, reason, count(*) AS n
FROM quarantine
GROUP BY ALL
ORDER BY ALL
