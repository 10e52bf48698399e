-- Rows read per entity, counted on the CANDIDATE tables (before any reason is assigned), so that
-- rows_in = loaded + quarantined is a real check on the final tables, not a tautology.
-- Grain: one row per entity. Parameters: none.
SELECT entity, sum(n) AS rows_in FROM (
    SELECT 'images' AS entity, count(*) AS n FROM cand_images
    UNION ALL SELECT 'captions', count(*) FROM cand_captions
    UNION ALL SELECT 'regions', count(*) FROM cand_boxes WHERE entity = 'regions'
    UNION ALL SELECT 'objects', count(*) FROM cand_boxes WHERE entity = 'objects'
    UNION ALL SELECT 'splits', count(*) FROM cand_splits
    UNION ALL SELECT entity, count(*) FROM cand_rejects GROUP BY entity
)
GROUP BY entity
ORDER BY entity
