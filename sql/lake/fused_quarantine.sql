-- The quarantined rows collected by fused_regions_check.sql (table fused_check), as t_boxes rows.
-- Grain: one row per quarantined region. Parameters: none.
SELECT unnest(quarantined, recursive := true) FROM fused_check
