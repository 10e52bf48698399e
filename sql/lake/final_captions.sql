-- Candidate captions (cand_captions) checked against the final images (t_images). Reasons, first wins:
--   <parse reason>, empty_text (NULL, or nothing left once X-VLM's pre_caption drops whitespace and
--   ,.'!?"()*#:;~-/), duplicate_id (same caption_id twice),
--   unknown_image (no such image in this source), image_not_loaded (its image is quarantined).
-- The caption text is kept as written (normalisation for the text encoder happens downstream).
-- Grain: one row per candidate caption. Parameters: none.
WITH dup_keys AS (
    SELECT caption_id FROM cand_captions WHERE caption_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT c.file, c.ord, row_number() OVER (PARTITION BY c.caption_id ORDER BY c.ord, c.file, c.locator) AS dup_rank
    FROM cand_captions AS c SEMI JOIN dup_keys AS k ON k.caption_id = c.caption_id
),
c AS (
    SELECT
        c.*,
        coalesce(d.dup_rank, 1) AS dup_rank,
        i.image_key AS img_key, i.reason AS img_reason, i.split AS img_split
    FROM cand_captions AS c
    LEFT JOIN dups AS d ON d.file = c.file AND d.ord = c.ord
    LEFT JOIN (SELECT * FROM t_images WHERE image_key IS NOT NULL
               QUALIFY row_number() OVER (PARTITION BY image_key ORDER BY reason NULLS FIRST) = 1) AS i
        ON i.image_key = c.image_key
),
r AS (
    SELECT
        *,
        CASE
            WHEN reason IS NOT NULL THEN reason
            WHEN caption IS NULL OR regexp_replace(caption, '[\s,.''!?"()*#:;~/-]+', '', 'g') = '' THEN 'empty_text'
            WHEN dup_rank > 1 THEN 'duplicate_id'
            WHEN img_key IS NULL THEN 'unknown_image'
            WHEN img_reason IS NOT NULL THEN 'image_not_loaded'
        END AS final_reason
    FROM c
)
SELECT
    image_key, source, coalesce(split, img_split) AS split, caption_id, caption, file, locator,
    final_reason AS reason,
    CASE WHEN final_reason IS NOT NULL THEN to_json({
        'image_key': image_key, 'caption_id': caption_id, 'caption': caption, 'image_reason': img_reason}) END AS raw
FROM r
