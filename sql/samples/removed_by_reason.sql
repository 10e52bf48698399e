-- Removed images counted by reason, for the stats record.
-- Grain: one row per reason. Parameters: none.
SELECT reason, count(*) AS n
FROM removed
GROUP BY reason
ORDER BY reason
