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
-- How (issue 15: the five window passes over every image were 37x slower from 10% to 100% of the 16M
-- corpus, each one sorting and spilling every row's wide columns): an image can only be merged when
-- one of its three keys is shared with another selected image, so the windows run over just those
-- candidates (`cand`, ~0.6% of the images at 16M), found by counting hashed keys; every other image
-- is its own group. A hash collision only adds a candidate (the windows compare the real keys), so
-- the outcome is exactly that of the windows over all images (tests/shards/test_image_outcomes.py).
-- The probe's statuses are ok | missing | unreadable | corrupt | too_small | size_mismatch
-- (xvlm/data/shards/images.py), so status = 'ok' is "no unusable reason".
-- Grain: one row per selected image (table sel_images joined with table probe).
-- Parameters: $leak_splits (VARCHAR[]).
WITH leak_list AS (
    SELECT dataset || '/' || split AS ds, image_key, coco_id, flickr_id
    FROM l_splits
    WHERE list_contains($leak_splits, dataset || '/' || split)
),
leak_hits AS (
    SELECT s.image_key, 'coco_id:' || l.ds AS detail FROM sel_images AS s JOIN leak_list AS l ON s.coco_id = l.coco_id
    UNION ALL
    SELECT s.image_key, 'flickr_id:' || l.ds FROM sel_images AS s JOIN leak_list AS l ON s.flickr_id = l.flickr_id
    UNION ALL
    SELECT s.image_key, 'image_key:' || l.ds FROM sel_images AS s JOIN leak_list AS l ON s.image_key = l.image_key
),
leaked AS (
    SELECT image_key, min(detail) AS leak_detail FROM leak_hits GROUP BY image_key
),
keys AS (
    SELECT 1 AS k, hash(coco_id) AS h FROM sel_images WHERE coco_id IS NOT NULL
    UNION ALL
    SELECT 2, hash(url) FROM sel_images WHERE url IS NOT NULL
    UNION ALL
    SELECT 3, hash(sha256) FROM probe WHERE sha256 IS NOT NULL
),
shared AS (  -- hashed coco_id / url / sha256 values held by more than one selected image
    SELECT k, h FROM keys GROUP BY k, h HAVING count(*) > 1
),
cand_keys AS (
    SELECT image_key FROM sel_images AS s SEMI JOIN shared ON shared.k = 1 AND shared.h = hash(s.coco_id)
    UNION
    SELECT image_key FROM sel_images AS s SEMI JOIN shared ON shared.k = 2 AND shared.h = hash(s.url)
    UNION
    SELECT image_key FROM probe AS p SEMI JOIN shared ON shared.k = 3 AND shared.h = hash(p.sha256)
),
cand AS (
    SELECT s.image_key, lpad(CAST(s.prio AS VARCHAR), 4, '0') || ':' || s.image_key AS rank_key,
           s.coco_id, s.url, p.sha256
    FROM sel_images AS s
    SEMI JOIN cand_keys USING (image_key)
    JOIN probe AS p USING (image_key)
    ANTI JOIN leaked USING (image_key)
    WHERE p.status = 'ok'
),
g1 AS (
    SELECT *, CASE WHEN coco_id IS NULL THEN rank_key
                   ELSE min(rank_key) OVER (PARTITION BY coco_id) END AS g1
    FROM cand
),
u AS (
    SELECT *, CASE WHEN url IS NULL THEN g1 ELSE min(g1) OVER (PARTITION BY url) END AS g2x FROM g1
),
u2 AS (
    SELECT *, min(g2x) OVER (PARTITION BY g1) AS g2 FROM u
),
h AS (
    SELECT *, CASE WHEN sha256 IS NULL THEN g2 ELSE min(g2) OVER (PARTITION BY sha256) END AS g3x FROM u2
),
grp AS (  -- the candidates' groups; rank_key = 'pppp:image_key' (prio to 4 digits), so substr(g, 6) is the key
    SELECT image_key, rank_key, g1, g2, min(g3x) OVER (PARTITION BY g2) AS g3 FROM h
),
r AS (
    SELECT s.*, p.status, p.sha256, p.file_width, p.file_height, p.nbytes, p.image_format, k.leak_detail,
        CASE
            WHEN p.status IS NULL OR p.status = 'missing' THEN 'missing_image'
            WHEN p.status = 'unreadable' THEN 'unreadable_image'
            WHEN p.status = 'corrupt' THEN 'corrupt_image'
            WHEN p.status = 'too_small' THEN 'image_too_small'
            WHEN p.status = 'size_mismatch' THEN 'image_size_mismatch'
            WHEN k.leak_detail IS NOT NULL THEN 'leak'
        END AS pre_reason,
        g.rank_key AS grank, g.g1, g.g2, g.g3
    FROM sel_images AS s
    LEFT JOIN probe AS p USING (image_key)
    LEFT JOIN leaked AS k USING (image_key)
    LEFT JOIN grp AS g USING (image_key)
)
SELECT
    image_key, source, prio, split, path, tar_key, url, coco_id, flickr_id,
    sha256, nbytes, file_width AS width, file_height AS height, status, image_format,
    CASE WHEN pre_reason IS NULL THEN coalesce(substr(g3, 6), image_key) END AS canonical_key,
    CASE
        WHEN pre_reason IS NOT NULL THEN pre_reason
        WHEN g1 <> grank THEN 'duplicate_coco_id'
        WHEN g2 <> grank THEN 'duplicate_url'
        WHEN g3 <> grank THEN 'duplicate_sha256'
    END AS reason,
    CASE WHEN pre_reason = 'leak' THEN leak_detail
         WHEN pre_reason IS NOT NULL THEN status END AS detail
FROM r
ORDER BY image_key
