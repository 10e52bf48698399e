-- Region ids of the fused pass: the loaded ones as written ($regions_path, column region_id) plus the
-- quarantined ones (Arrow table fused_quarantined). When every non-NULL box_id casts to a BIGINT
-- (counted on the stream by xvlm/data/lake/fused.py) and n = n_distinct = its count of box_ids, no two
-- rows share a box_id, so final_boxes would have found no duplicate_id.
-- Grain: one row. Parameters: $regions_path.
SELECT count(*) AS n, count(DISTINCT id) AS n_distinct FROM (
    SELECT region_id AS id FROM read_parquet($regions_path) WHERE region_id IS NOT NULL
    UNION ALL
    SELECT region_id FROM fused_quarantined WHERE region_id IS NOT NULL
)
