-- OpenImages without a usable image size index (none configured, or one unusable as a whole): the
-- empty table oi_images.sql joins (sizes then come from the JPEG headers when check_images is on,
-- else every box is unknown_image_size).
-- Grain: no rows. Parameters: none.
SELECT CAST(NULL AS VARCHAR) AS image_id, CAST(NULL AS VARCHAR) AS width, CAST(NULL AS VARCHAR) AS height
WHERE false
