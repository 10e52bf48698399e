-- Region ids of the fused pass: the loaded ones as written ($regions_path, column region_id) plus the
-- quarantined ones (table fused_check). When every non-NULL box_id casts to a BIGINT (checked by
-- fused_regions_check.sql) and n = n_distinct = its n_ids, no two rows share a box_id, so
-- final_boxes would have found no duplicate_id.
-- Grain: one row. Parameters: $regions_path.
SELECT count(*) AS n, count(DISTINCT id) AS n_distinct FROM (
    SELECT region_id AS id FROM read_parquet($regions_path) WHERE region_id IS NOT NULL
    UNION ALL
    SELECT TRY_CAST(q.box_id AS BIGINT) FROM (SELECT unnest(quarantined) AS q FROM fused_check)
    WHERE q.box_id IS NOT NULL
)
