-- OpenImages class names: the usable lines of the class file (Arrow table oi_class_lines: one MID
-- each, duplicates already quarantined), the lookup oi_boxes.sql joins by LabelName.
-- Grain: one row per MID. Parameters: none.
SELECT mid, name
FROM oi_class_lines
WHERE reason IS NULL
