-- The quarantined rows of the fused regions stream (fused_regions_stream.sql), kept by
-- xvlm/data/lake/fused.py as the Arrow table fused_quarantined, as t_boxes rows.
-- Grain: one row per quarantined region. Parameters: none.
SELECT entity, image_key, source, box_id, x, y, w, h, phrase AS label, attributes, flags, is_group, clipped,
       file, locator, reason, raw
FROM fused_quarantined
