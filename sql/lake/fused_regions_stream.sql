-- The fused regions (CTE fused_regions = vg_regions_fused.sql) as ONE stream that xvlm/data/lake/fused.py
-- splits while it is produced: rows with reason NULL become the `regions` partition (the first nine
-- columns, exactly those of out_regions.sql), the others the quarantined t_boxes rows (the t_boxes
-- columns below, filled only for quarantined rows so the loaded millions carry no constants).
-- box_id and region_id come with every row: the ingest counts ids here to decide whether a region id
-- could repeat (count(box_id) > count(region_id) = a non-integer id).
-- Grain: one row per region. Parameters: none.
SELECT
    image_key, source, TRY_CAST(box_id AS BIGINT) AS region_id, x, y, w, h, label AS phrase, clipped,
    box_id, reason, locator, raw,
    CASE WHEN reason IS NOT NULL THEN entity END AS entity,
    CASE WHEN reason IS NOT NULL THEN attributes END AS attributes,
    CASE WHEN reason IS NOT NULL THEN flags END AS flags,
    CASE WHEN reason IS NOT NULL THEN is_group END AS is_group,
    CASE WHEN reason IS NOT NULL THEN file END AS file
FROM fused_regions
