-- The selected images the probe reads (xvlm/data/shards/images.py), in file order (path, then tar
-- member) so reads from one folder or tar stay together.
-- Grain: one row per selected image. Parameters: none.
SELECT image_key, path, tar_key, width, height
FROM sel_images
ORDER BY path, tar_key
