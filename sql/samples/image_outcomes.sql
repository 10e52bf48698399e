-- Every selected image with what becomes of it, in this order (first match wins):
--   1. unusable: the probe found the file missing / unreadable (permission, symlink loop) / corrupt /
--      with a shorter side below the recipe's min_image_side / with another size than the lake says
--      (reason missing_image | unreadable_image | corrupt_image | image_too_small | image_size_mismatch);
--   2. leak: its coco_id, flickr_id or image_key is in a downstream split listed in $leak_splits
--      ('dataset/split', e.g. 'coco/test'); reason 'leak', detail = '<matched on>:<dataset>/<split>';
--   3. dedup among the survivors, three passes, each merging whole groups (METHOD.md section 6):
--      same coco_id (VG + COCO) -> duplicate_coco_id; same URL (CC3M/CC12M) -> duplicate_url;
--      same image bytes (sha256) -> duplicate_sha256. The group's canonical image is the one whose
--      source comes first in the recipe, then the smallest key; the others are merged into it
--      (their captions/boxes are kept, rescaled to the canonical image) and removed as images.
-- canonical_key: the sample the image's annotations go to (NULL for unreadable or leaked images).
-- Grain: one row per selected image (table sel_images joined with table probe).
-- Parameters: $leak_splits (VARCHAR[]).
WITH s AS (
    SELECT s.*, p.status, p.sha256, p.file_width, p.file_height, p.nbytes, p.image_format,
           lpad(CAST(s.prio AS VARCHAR), 4, '0') || ':' || s.image_key AS rank_key
    FROM sel_images AS s
    LEFT JOIN probe AS p USING (image_key)
),
leak_list AS (
    SELECT dataset || '/' || split AS ds, image_key, coco_id, flickr_id
    FROM l_splits
    WHERE list_contains($leak_splits, dataset || '/' || split)
),
leak_hits AS (
    SELECT s.image_key, 'coco_id:' || l.ds AS detail FROM s JOIN leak_list AS l ON s.coco_id = l.coco_id
    UNION ALL
    SELECT s.image_key, 'flickr_id:' || l.ds FROM s JOIN leak_list AS l ON s.flickr_id = l.flickr_id
    UNION ALL
    SELECT s.image_key, 'image_key:' || l.ds FROM s JOIN leak_list AS l ON s.image_key = l.image_key
),
leaked AS (
    SELECT image_key, min(detail) AS leak_detail FROM leak_hits GROUP BY image_key
),
r AS (
    SELECT s.*, k.leak_detail,
        CASE
            WHEN s.status IS NULL OR s.status = 'missing' THEN 'missing_image'
            WHEN s.status = 'unreadable' THEN 'unreadable_image'
            WHEN s.status = 'corrupt' THEN 'corrupt_image'
            WHEN s.status = 'too_small' THEN 'image_too_small'
            WHEN s.status = 'size_mismatch' THEN 'image_size_mismatch'
            WHEN k.leak_detail IS NOT NULL THEN 'leak'
        END AS pre_reason
    FROM s LEFT JOIN leaked AS k USING (image_key)
),
live AS (
    SELECT *, CASE WHEN coco_id IS NULL THEN rank_key
                   ELSE min(rank_key) OVER (PARTITION BY coco_id) END AS g1
    FROM r WHERE pre_reason IS NULL
),
u AS (
    SELECT *, CASE WHEN url IS NULL THEN g1 ELSE min(g1) OVER (PARTITION BY url) END AS g2x FROM live
),
u2 AS (
    SELECT *, min(g2x) OVER (PARTITION BY g1) AS g2 FROM u
),
h AS (
    SELECT *, CASE WHEN sha256 IS NULL THEN g2 ELSE min(g2) OVER (PARTITION BY sha256) END AS g3x FROM u2
),
h2 AS (
    SELECT *, min(g3x) OVER (PARTITION BY g2) AS g3 FROM h
)
SELECT
    r.image_key, r.source, r.prio, r.split, r.path, r.tar_key, r.url, r.coco_id, r.flickr_id,
    r.sha256, r.nbytes, r.file_width AS width, r.file_height AS height, r.status, r.image_format,
    CASE WHEN h2.g3 IS NOT NULL THEN split_part(h2.g3, ':', 2) END AS canonical_key,
    CASE
        WHEN r.pre_reason IS NOT NULL THEN r.pre_reason
        WHEN h2.g1 <> r.rank_key THEN 'duplicate_coco_id'
        WHEN h2.g2 <> r.rank_key THEN 'duplicate_url'
        WHEN h2.g3 <> r.rank_key THEN 'duplicate_sha256'
    END AS reason,
    CASE WHEN r.pre_reason = 'leak' THEN r.leak_detail
         WHEN r.pre_reason IS NOT NULL THEN r.status END AS detail
FROM r LEFT JOIN h2 USING (image_key)
ORDER BY r.image_key
