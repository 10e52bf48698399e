-- Candidate boxes (cand_boxes: regions and objects) -> pixel boxes [x, y, w, h] in the frame of the
-- final image (t_images), with THE BOX RULE (docs/lake.md, the only place it is implemented):
--   1. coordinates must parse as finite numbers, else invalid_box;
--   2. the image must exist in this source (unknown_image) and be loaded (image_not_loaded), and its
--      size must be known (unknown_image_size);
--   3. 'xxyy_norm' boxes (OpenImages) become pixels: x = XMin*W, w = (XMax-XMin)*W, same for y with H;
--   4. w <= 0 or h <= 0 -> zero_size_box;
--   5. the box is intersected with the image [0, W] x [0, H]; if the intersection keeps at least
--      $min_kept_fraction of the box's area the CLIPPED box is loaded (clipped = true when it changed),
--      else box_outside_image;
--   plus duplicate_id (same box id twice within an entity) and empty_text (phrase/label empty once
--   X-VLM's pre_caption drops whitespace and punctuation).
-- Grain: one row per candidate box. Parameters: $min_kept_fraction (DOUBLE).
WITH img AS (
    SELECT image_key, reason AS img_reason, CAST(width AS DOUBLE) AS iw, CAST(height AS DOUBLE) AS ih
    FROM t_images
    WHERE image_key IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY image_key ORDER BY reason NULLS FIRST) = 1
),
-- Duplicates are found with a hash aggregate first; only the (few) duplicated ids are ranked, so
-- millions of boxes are never sorted. (file, ord) identifies a candidate row.
dup_keys AS (
    SELECT entity, box_id FROM cand_boxes WHERE box_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT c.entity, c.file, c.ord,
           row_number() OVER (PARTITION BY c.entity, c.box_id ORDER BY c.ord, c.file, c.locator) AS dup_rank
    FROM cand_boxes AS c SEMI JOIN dup_keys AS k ON k.entity = c.entity AND k.box_id = c.box_id
),
b AS (
    SELECT
        b.*, img.image_key AS img_key, img.img_reason, img.iw, img.ih,
        TRY_CAST(c0 AS DOUBLE) AS v0, TRY_CAST(c1 AS DOUBLE) AS v1,
        TRY_CAST(c2 AS DOUBLE) AS v2, TRY_CAST(c3 AS DOUBLE) AS v3,
        coalesce(d.dup_rank, 1) AS dup_rank
    FROM cand_boxes AS b
    LEFT JOIN img ON img.image_key = b.image_key
    LEFT JOIN dups AS d ON d.entity = b.entity AND d.file = b.file AND d.ord = b.ord
),
px AS (
    SELECT
        *,
        CASE WHEN coords = 'xxyy_norm' THEN v0 * iw ELSE v0 END AS x,
        CASE WHEN coords = 'xxyy_norm' THEN v2 * ih ELSE v1 END AS y,
        CASE WHEN coords = 'xxyy_norm' THEN (v1 - v0) * iw ELSE v2 END AS w,
        CASE WHEN coords = 'xxyy_norm' THEN (v3 - v2) * ih ELSE v3 END AS h
    FROM b
),
cl AS (
    SELECT
        *,
        greatest(x, 0) AS cx0, greatest(y, 0) AS cy0, least(x + w, iw) AS cx1, least(y + h, ih) AS cy1,
        greatest(least(x + w, iw) - greatest(x, 0), 0) * greatest(least(y + h, ih) - greatest(y, 0), 0) AS kept_area
    FROM px
),
r AS (
    SELECT
        *,
        CASE
            WHEN reason IS NOT NULL THEN reason
            WHEN v0 IS NULL OR v1 IS NULL OR v2 IS NULL OR v3 IS NULL
              OR NOT (isfinite(v0) AND isfinite(v1) AND isfinite(v2) AND isfinite(v3)) THEN 'invalid_box'
            WHEN dup_rank > 1 THEN 'duplicate_id'
            WHEN label IS NULL OR regexp_replace(label, '[\s,.''!?"()*#:;~/-]+', '', 'g') = '' THEN 'empty_text'
            WHEN img_key IS NULL THEN 'unknown_image'
            WHEN img_reason IS NOT NULL THEN 'image_not_loaded'
            WHEN iw IS NULL OR ih IS NULL THEN 'unknown_image_size'
            WHEN w <= 0 OR h <= 0 THEN 'zero_size_box'
            WHEN kept_area < $min_kept_fraction * w * h THEN 'box_outside_image'
        END AS final_reason
    FROM cl
)
SELECT
    entity, image_key, source, box_id,
    CASE WHEN final_reason IS NULL THEN cx0 END AS x,
    CASE WHEN final_reason IS NULL THEN cy0 END AS y,
    CASE WHEN final_reason IS NULL THEN cx1 - cx0 END AS w,
    CASE WHEN final_reason IS NULL THEN cy1 - cy0 END AS h,
    label, attributes, coalesce(flags, CAST([] AS VARCHAR[])) AS flags,
    coalesce(lower(is_group) IN ('1', 'true'), false) AS is_group,
    final_reason IS NULL AND (cx0 <> x OR cy0 <> y OR cx1 <> x + w OR cy1 <> y + h) AS clipped,
    file, locator,
    final_reason AS reason,
    CASE WHEN final_reason IS NOT NULL THEN to_json({
        'image_key': image_key, 'box_id': box_id, 'coords': coords, 'c': [c0, c1, c2, c3], 'label': label,
        'image_width': iw, 'image_height': ih, 'image_reason': img_reason}) END AS raw
FROM r
