-- Read an OpenImages image size index (optional input `openimages.image_sizes`: a CSV with header
-- ImageID,Width,Height, one line per image) as text columns with the ordinal among accepted lines,
-- like oi_boxes_read.sql: the lines the reader rejects (bad UTF-8, wrong field count) go to
-- reject_errors (store_rejects), the line faults found before the read to line_faults
-- (xvlm/data/lake/lines.py); csv_rejects.sql quarantines both. Columns are named by the header
-- (oi_size_lines.sql selects them by name; a header without them is a file-level error).
-- Grain: one row per accepted line. Parameters: $path.
SELECT *
FROM read_csv($path, header = true, delim = ',', quote = '', escape = '', all_varchar = true,
              store_rejects = true) WITH ORDINALITY AS t
