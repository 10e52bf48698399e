-- Lake table `objects`: loaded object boxes (COCO instances, VG objects + attributes, Objects365,
-- OpenImages) in pixels after the box rule; is_group = COCO/O365 iscrowd or OpenImages IsGroupOf.
-- Grain: one row per object box. Parameters: none.
SELECT image_key, source, box_id AS object_id, x, y, w, h, label, attributes, is_group, flags, clipped
FROM t_boxes
WHERE reason IS NULL AND entity = 'objects'
