-- Lake table `regions`: loaded region descriptions (VG) with pixel boxes after the box rule.
-- Grain: one row per region. Parameters: none.
SELECT image_key, source, TRY_CAST(box_id AS BIGINT) AS region_id, x, y, w, h, label AS phrase, clipped
FROM t_boxes
WHERE reason IS NULL AND entity = 'regions'
