-- One pass over the fused regions (CTE fused_regions = vg_regions_fused.sql): rows read, the counts
-- that decide whether a region id can repeat, and the quarantined rows (few) as a list.
-- The fused path is used only when every non-NULL box_id casts to a BIGINT and those are distinct
-- (then no two rows share a box_id string, so final_boxes would find no duplicate_id).
-- Grain: one row. Parameters: none.
SELECT
    count(*) AS rows_in,
    count(box_id) AS n_ids,
    count(DISTINCT TRY_CAST(box_id AS BIGINT)) AS n_distinct_int_ids,
    count(box_id) FILTER (WHERE TRY_CAST(box_id AS BIGINT) IS NULL) AS n_non_int_ids,
    coalesce(list({
        'entity': entity, 'image_key': image_key, 'source': source, 'box_id': box_id, 'x': x, 'y': y,
        'w': w, 'h': h, 'label': label, 'attributes': attributes, 'flags': flags, 'is_group': is_group,
        'clipped': clipped, 'file': file, 'locator': locator, 'reason': reason, 'raw': raw
    }) FILTER (WHERE reason IS NOT NULL), []) AS quarantined
FROM fused_regions
