-- The accepted lines of an OpenImages image size index (table csv_acc, from oi_sizes_read.sql), each
-- with its true line number (csv_gaps.sql, $header_lines = 1) and the reason it is not used (NULL =
-- used). Values stay text as written; reasons, first match wins:
--   invalid_id      ImageID missing/empty or not [0-9A-Za-z]+ (the rule oi_boxes.sql applies to box rows)
--   invalid_number  Width or Height missing, or not a positive integer written as decimal digits
--                   ("640.0", " 640", "1e3", "0", "-5" all are; at most 9 significant digits). This is
--                   the ONE place the index's values are checked: a quarantined line leaves its image
--                   without an index size, as if it were not listed (its size then comes from the JPEG
--                   header with check_images, else its boxes are unknown_image_size); final_images'
--                   invalid_number never sees it.
--   duplicate_id    an ImageID already on an earlier usable line: every later line is quarantined and
--                   the first usable line's size is used. Identical repeats too: the index is ONE file,
--                   and COCO-format images merge identical records only ACROSS files (final_images.sql);
--                   within one file a repeated id is duplicate_id, identical or not.
-- Duplicates: one hash aggregate (the first usable line of each repeated ImageID), no sort.
-- Grain: one row per accepted line. Parameters: none.
WITH s AS (
    SELECT acc."ImageID" AS image_id, acc."Width" AS width, acc."Height" AS height,
           acc."ordinality" + 1 + coalesce(g.j, 0) AS line
    FROM csv_acc AS acc ASOF LEFT JOIN csv_gaps AS g ON acc."ordinality" > g.acc_before
),
v AS (
    SELECT *, CASE
        WHEN image_id IS NULL OR NOT regexp_matches(image_id, '^[0-9A-Za-z]+$') THEN 'invalid_id'
        -- one regex for both values: 1-9 significant digits, so the value is positive and fits INTEGER
        WHEN NOT coalesce(regexp_full_match(width || 'x' || height, '0*[1-9][0-9]{0,8}x0*[1-9][0-9]{0,8}'), false)
            THEN 'invalid_number'
    END AS check_reason
    FROM s
),
firsts AS (  -- the first usable line of each ImageID that has more than one (a hash aggregate, no sort)
    SELECT image_id, min(line) AS first_line FROM v WHERE check_reason IS NULL GROUP BY image_id HAVING count(*) > 1
)
SELECT v.image_id, v.width, v.height, v.line,
       coalesce(v.check_reason, CASE WHEN v.line > f.first_line THEN 'duplicate_id' END) AS reason
FROM v LEFT JOIN firsts AS f ON f.image_id = v.image_id AND v.check_reason IS NULL
