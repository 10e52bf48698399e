-- Candidate images (cand_images) + image-file checks (image_checks) -> typed images, each with the
-- reason it is quarantined (NULL = loaded). Reasons, first match wins:
--   <parse reason>        set by the source's parse query (e.g. not_downloaded, invalid_url)
--   invalid_id            no usable id (key is NULL)
--   invalid_number        width/height present but not a number, or not positive (the OpenImages size
--                         index is checked per line in oi_size_lines.sql: a bad line gives no size here)
--   duplicate_id          second and later rows with the same key in this source, unless the row is
--                         identical to the first one and comes from another file (COCO lists an image
--                         in its captions AND its instances file): then it is loaded as that same
--                         image, merged = true, and out_images writes the image once
--   missing_image_file    $check_files and the file is not on disk
--   unreadable_image_file $check_files and the path exists but cannot be read (permission, symlink loop)
--   corrupt_image         $check_files and PIL cannot read the image header
--   image_too_small       $check_files and the file's shorter side is below the ingest's min_image_side
--   image_size_mismatch   annotation width/height disagree with the file's header
-- width/height: the annotation's, else the file header's. coco_id/flickr_id <= 0 (VG writes -1) -> NULL.
-- Grain: one row per candidate image. Parameters: $check_files (BOOLEAN).
WITH dup_keys AS (
    SELECT image_key FROM cand_images WHERE image_key IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT c.file, c.ord, row_number() OVER w AS dup_rank,
           c.file <> first_value(c.file) OVER w
           AND (c.split, c.source_id, c.path, c.url, c.width, c.height, c.coco_id, c.flickr_id, c.reason)
               IS NOT DISTINCT FROM first_value((c.split, c.source_id, c.path, c.url, c.width, c.height, c.coco_id,
                                                 c.flickr_id, c.reason)) OVER w AS same_as_first
    FROM cand_images AS c SEMI JOIN dup_keys AS k ON k.image_key = c.image_key
    WINDOW w AS (PARTITION BY c.image_key ORDER BY c.ord, c.file, c.locator)
),
c AS (
    SELECT
        c.*,
        TRY_CAST(c.width AS DOUBLE) AS w_num,
        TRY_CAST(c.height AS DOUBLE) AS h_num,
        coalesce(d.dup_rank, 1) AS dup_rank,
        coalesce(d.same_as_first, false) AS merged,
        k.status, k.file_width, k.file_height
    FROM cand_images AS c
    LEFT JOIN dups AS d ON d.file = c.file AND d.ord = c.ord
    LEFT JOIN image_checks AS k ON k.image_key = c.image_key
),
r AS (
    SELECT
        *,
        CASE
            WHEN reason IS NOT NULL THEN reason
            WHEN image_key IS NULL THEN 'invalid_id'
            WHEN (width IS NOT NULL AND (w_num IS NULL OR w_num <= 0 OR w_num <> floor(w_num)))
              OR (height IS NOT NULL AND (h_num IS NULL OR h_num <= 0 OR h_num <> floor(h_num))) THEN 'invalid_number'
            WHEN dup_rank > 1 AND NOT merged THEN 'duplicate_id'
            WHEN $check_files AND status = 'missing' THEN 'missing_image_file'
            WHEN $check_files AND status = 'unreadable' THEN 'unreadable_image_file'
            WHEN $check_files AND status = 'corrupt' THEN 'corrupt_image'
            WHEN $check_files AND status = 'too_small' THEN 'image_too_small'
            WHEN $check_files AND status = 'ok' AND w_num IS NOT NULL
                 AND (w_num <> file_width OR h_num <> file_height) THEN 'image_size_mismatch'
        END AS final_reason
    FROM c
)
SELECT
    image_key, source, split, source_id, path, tar_key, url,
    CAST(coalesce(w_num, file_width) AS INTEGER) AS width,
    CAST(coalesce(h_num, file_height) AS INTEGER) AS height,
    CASE WHEN TRY_CAST(coco_id AS BIGINT) > 0 THEN TRY_CAST(coco_id AS BIGINT) END AS coco_id,
    CASE WHEN TRY_CAST(flickr_id AS BIGINT) > 0 THEN TRY_CAST(flickr_id AS BIGINT) END AS flickr_id,
    sha256, file, locator,
    final_reason AS reason,
    merged AND final_reason IS NULL AS merged,
    CASE WHEN final_reason IS NOT NULL THEN to_json({
        'image_key': image_key, 'source_id': source_id, 'path': path, 'url': url, 'width': width,
        'height': height, 'coco_id': coco_id, 'flickr_id': flickr_id, 'detail': detail,
        'file_status': status, 'file_width': file_width, 'file_height': file_height}) END AS raw
FROM r
