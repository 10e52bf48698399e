-- Audit (zero rows expected): samples (or images merged into them) that are in a downstream split
-- listed in $leak_splits, by coco_id, flickr_id or image key.
-- Grain: one row per (leaked image, split). Parameters: $leak_splits (VARCHAR[]).
WITH keys AS (
    SELECT image_key FROM a_samples
    UNION ALL
    SELECT unnest(merged_keys) FROM a_samples
),
imgs AS (
    SELECT i.image_key, i.source,
           coalesce(i.coco_id, CASE WHEN i.source = 'coco'
                    THEN TRY_CAST(regexp_extract(i.path, '(\d{12})\.[A-Za-z]+$', 1) AS BIGINT) END) AS coco_id,
           i.flickr_id
    FROM l_images AS i SEMI JOIN keys USING (image_key)
),
l AS (
    SELECT dataset || '/' || split AS ds, image_key, coco_id, flickr_id FROM l_splits
    WHERE list_contains($leak_splits, dataset || '/' || split)
)
SELECT imgs.image_key, l.ds, 'coco_id' AS matched_on FROM imgs JOIN l ON imgs.coco_id = l.coco_id
UNION ALL
SELECT imgs.image_key, l.ds, 'flickr_id' FROM imgs JOIN l ON imgs.flickr_id = l.flickr_id
UNION ALL
SELECT imgs.image_key, l.ds, 'image_key' FROM imgs JOIN l ON imgs.image_key = l.image_key
