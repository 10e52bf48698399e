-- The image-file checks made in Python (xvlm/data/lake/images.py, PIL header reads), registered as
-- the Arrow table image_checks_arrow; inserted into table image_checks (empty_image_checks.sql).
-- Grain: one row per checked image. Parameters: none.
SELECT image_key, status, file_width, file_height
FROM image_checks_arrow
