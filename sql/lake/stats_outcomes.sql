-- Outcome counts per (file, entity, reason) over the final tables; reason NULL = loaded. `merged`
-- counts the loaded image records that repeat an identical record of another file (one lake row).
-- Grain: one row per (file, entity, reason). Parameters: none.
SELECT file, entity, reason, count(*) AS n, sum(merged) AS merged FROM (
    SELECT file, 'images' AS entity, reason, CAST(merged AS INTEGER) AS merged FROM t_images
    UNION ALL SELECT file, 'captions', reason, 0 FROM t_captions
    UNION ALL SELECT file, entity, reason, 0 FROM t_boxes
    UNION ALL SELECT file, 'splits', reason, 0 FROM t_splits
    UNION ALL SELECT file, entity, reason, 0 FROM cand_rejects
    UNION ALL SELECT file, entity, reason, 0 FROM cand_aux
)
GROUP BY ALL
ORDER BY file, entity, reason NULLS FIRST
