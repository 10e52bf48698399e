-- Rows read per input file and entity, counted on the CANDIDATE tables (before any reason is
-- assigned), so that rows_in = loaded + quarantined is a real check on the final tables, not a tautology.
-- Grain: one row per (file, entity). Parameters: none.
SELECT file, entity, sum(n) AS rows_in FROM (
    SELECT file, 'images' AS entity, count(*) AS n FROM cand_images GROUP BY ALL
    UNION ALL SELECT file, 'captions', count(*) FROM cand_captions GROUP BY ALL
    UNION ALL SELECT file, entity, count(*) FROM cand_boxes GROUP BY ALL
    UNION ALL SELECT file, 'splits', count(*) FROM cand_splits GROUP BY ALL
    UNION ALL SELECT file, entity, count(*) FROM cand_rejects GROUP BY ALL
    UNION ALL SELECT file, entity, count(*) FROM cand_aux GROUP BY ALL
)
GROUP BY ALL
ORDER BY file, entity
