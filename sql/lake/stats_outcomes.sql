-- Outcome counts per (entity, reason) over the final tables; reason NULL = loaded.
-- Grain: one row per (entity, reason). Parameters: none.
SELECT entity, reason, count(*) AS n FROM (
    SELECT 'images' AS entity, reason FROM t_images
    UNION ALL SELECT 'captions', reason FROM t_captions
    UNION ALL SELECT entity, reason FROM t_boxes
    UNION ALL SELECT 'splits', reason FROM t_splits
    UNION ALL SELECT entity, reason FROM cand_rejects
)
GROUP BY ALL
ORDER BY entity, reason NULLS FIRST
