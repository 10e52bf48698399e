-- Accepted TSV lines (table csv_acc) with their true 1-based line number and named columns.
-- The ordinal among accepted lines is corrected for the rejected lines with an ASOF join on table
-- csv_gaps (csv_gaps.sql, $header_lines = 0).
-- Grain: one row per accepted line.
-- Parameters: $layout ('caption_url' | 'url_caption').
SELECT
    acc.n + coalesce(g.j, 0) AS line,
    CASE WHEN $layout = 'caption_url' THEN a ELSE b END AS caption,
    CASE WHEN $layout = 'caption_url' THEN b ELSE a END AS url,
    CAST(NULL AS VARCHAR) AS type_reason
FROM csv_acc AS acc
ASOF LEFT JOIN csv_gaps AS g ON acc.n > g.acc_before
