-- OpenImages images: the distinct ImageIDs of the box rows (table cand_boxes). Sizes are unknown
-- here and are read from the JPEG headers (image_checks) in final_images.
-- Grain: one row per distinct image key. Parameters: $source, $split, $file, $image_dir.
SELECT
    image_key,
    $source AS source,
    $split AS split,
    substr(image_key, 4) AS source_id,
    $image_dir || '/' || substr(image_key, 4) || '.jpg' AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    CAST(NULL AS VARCHAR) AS url,
    CAST(NULL AS VARCHAR) AS width,
    CAST(NULL AS VARCHAR) AS height,
    CAST(NULL AS VARCHAR) AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'ImageID=' || substr(image_key, 4) AS locator,
    min(ord) AS ord,
    CAST(NULL AS VARCHAR) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM cand_boxes
WHERE file = $file AND image_key IS NOT NULL AND (reason IS NULL OR reason <> 'invalid_id')
GROUP BY image_key
