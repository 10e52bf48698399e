-- One pass over the fused regions (CTE fused_regions = vg_regions_fused.sql): rows read, the id
-- counts that decide whether a region id could repeat, and the (few) quarantined rows as a list.
-- Loaded rows' ids are compared afterwards on the written file (fused_ids_check.sql), so this pass
-- holds no hash table of millions of ids.
-- Grain: one row. Parameters: none.
SELECT
    count(*) AS rows_in,
    count(box_id) AS n_ids,
    count(box_id) FILTER (WHERE TRY_CAST(box_id AS BIGINT) IS NULL) AS n_non_int_ids,
    coalesce(list(CASE WHEN reason IS NOT NULL THEN {
        'entity': entity, 'image_key': image_key, 'source': source, 'box_id': box_id, 'x': x, 'y': y,
        'w': w, 'h': h, 'label': label, 'attributes': attributes, 'flags': flags, 'is_group': is_group,
        'clipped': clipped, 'file': file, 'locator': locator, 'reason': reason, 'raw': raw
    } END) FILTER (WHERE reason IS NOT NULL), []) AS quarantined
FROM fused_regions
