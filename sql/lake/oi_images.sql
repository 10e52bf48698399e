-- OpenImages images: the distinct ImageIDs of the box rows (table cand_boxes). Sizes: from the
-- optional size index (table oi_sizes: its usable lines, oi_sizes.sql; empty without one), else NULL
-- here and read from the JPEG headers (image_checks) in final_images.
-- Grain: one row per distinct image key. Parameters: $source, $split, $file, $image_dir.
SELECT
    b.image_key,
    $source AS source,
    $split AS split,
    substr(b.image_key, 4) AS source_id,
    $image_dir || '/' || substr(b.image_key, 4) || '.jpg' AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    CAST(NULL AS VARCHAR) AS url,
    any_value(s.width) AS width,
    any_value(s.height) AS height,
    CAST(NULL AS VARCHAR) AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'ImageID=' || substr(b.image_key, 4) AS locator,
    min(b.ord) AS ord,
    CAST(NULL AS VARCHAR) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM cand_boxes AS b
LEFT JOIN oi_sizes AS s ON s.image_id = substr(b.image_key, 4)
WHERE b.file = $file AND b.image_key IS NOT NULL AND (b.reason IS NULL OR b.reason <> 'invalid_id')
GROUP BY b.image_key
