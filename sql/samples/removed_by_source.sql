-- Removed images counted by source and reason, for the stats record.
-- Grain: one row per (source, reason). Parameters: none.
SELECT source, reason, count(*) AS n
FROM removed
GROUP BY ALL
ORDER BY ALL
