-- Caption / concept outcome counts per source for the stats record (reason NULL = kept).
-- Grain: one row per (entity, source, reason). Parameters: none.
SELECT 'captions' AS entity, source, reason, count(*) AS n FROM caption_cands GROUP BY ALL
UNION ALL
SELECT 'concepts', source, reason, count(*) FROM concept_cands GROUP BY ALL
ORDER BY entity, source, reason NULLS FIRST
