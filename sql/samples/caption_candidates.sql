-- Captions moved to their image's canonical sample. reason (NULL = kept), first match wins:
--   image_removed   the image is unreadable or leaked
--   control_characters  the text holds a control character other than tab, LF, CR (NUL, U+0001-U+001F,
--                   U+007F-U+009F): a binary or mis-decoded field, not a caption; never stored
--   empty_text      empty or without any letter or digit once trimmed (punctuation only)
--   duplicate_text  same text (case- and space-insensitive) as an earlier caption of the sample
--                   (a CC3M/CC12M duplicate URL often repeats its caption)
--   over_limit      beyond $max_captions for its sample (order: image rank, caption id)
-- norm: the text as compared for duplicate_text, computed in `j` and not as the window's partition
-- expression (16.0 -> 11.4 s CPU at 1.4M captions, one thread; bench/RESULTS.md, issue 15).
-- Grain: one row per lake caption of a selected image. Parameters: $max_captions (INTEGER).
WITH j AS (
    SELECT c.image_key, c.source, CAST(c.caption_id AS VARCHAR) AS caption_id, trim(c.caption) AS text,
           o.canonical_key, o.prio,
           CASE
               WHEN o.canonical_key IS NULL THEN 'image_removed'
               WHEN regexp_matches(c.caption, '[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}-\x{9F}]') THEN 'control_characters'
               WHEN c.caption IS NULL OR NOT regexp_matches(c.caption, '[\pL\pN]') THEN 'empty_text'
           END AS r1,
           lower(regexp_replace(trim(c.caption), '\s+', ' ', 'g')) AS norm
    FROM l_captions AS c
    JOIN outcomes AS o USING (image_key)
),
d AS (
    SELECT *, CASE WHEN r1 IS NULL AND row_number() OVER (
                  PARTITION BY canonical_key, r1 IS NULL, norm
                  ORDER BY prio, image_key, caption_id) > 1 THEN 'duplicate_text' ELSE r1 END AS r2
    FROM j
),
n AS (
    SELECT *, CASE WHEN r2 IS NULL THEN row_number() OVER (
                  PARTITION BY canonical_key, r2 IS NULL ORDER BY prio, image_key, caption_id) END AS rank_in_sample
    FROM d
)
SELECT image_key, canonical_key, source, caption_id, text,
       coalesce(r2, CASE WHEN rank_in_sample > $max_captions THEN 'over_limit' END) AS reason,
       rank_in_sample
FROM n
ORDER BY canonical_key, rank_in_sample, image_key, caption_id
