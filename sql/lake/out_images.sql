-- Lake table `images`: loaded images of one source (t_images rows without a reason).
-- Grain: one row per image; image_key is unique within the lake (keys carry the source prefix and
-- never contain dots: webdataset splits keys on the first dot). path is relative to the raw root
-- (for web sources: the img2dataset tar, with tar_key the member basename).
-- A record identical to one of another file of the source (merged) is that same image: one row.
-- Parameters: none.
SELECT image_key, source, split, path, tar_key, url, width, height, coco_id, flickr_id, sha256, source_id
FROM t_images
WHERE reason IS NULL AND NOT merged
