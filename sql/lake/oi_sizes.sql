-- OpenImages image sizes: the usable lines of the size index (table oi_size_lines, one per ImageID,
-- bad and repeated lines already quarantined), the lookup oi_images.sql joins by ImageID.
-- Grain: one row per ImageID. Parameters: none.
SELECT image_id, width, height
FROM oi_size_lines
WHERE reason IS NULL
