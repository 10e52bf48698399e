-- Lake table `splits`: downstream evaluation split membership (Karpathy COCO / Flickr30K), the
-- list later used to remove leaked images from pre-training. source = the file family ('karpathy').
-- Grain: one row per (dataset, image_key). Parameters: $source.
SELECT dataset, split, image_key, coco_id, flickr_id, $source AS source
FROM t_splits
WHERE reason IS NULL
ORDER BY dataset, image_key
