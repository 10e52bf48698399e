-- The runs of lines the CSV reader rejected (table reject_errors, filled by store_rejects), as the
-- correction that turns an accepted line's ordinal (1-based, among ACCEPTED lines, from WITH
-- ORDINALITY) into its true 1-based line number: line = ordinal + $header_lines + j, with j from
-- `ASOF LEFT JOIN csv_gaps ON ordinal > acc_before` (0 when no row matches). Rejected line L_k (k-th,
-- 1-based) has acc_before = L_k - $header_lines - k accepted lines before it; consecutive rejected
-- lines share acc_before and only the largest k is kept (all of them precede the next accepted row).
-- The one place this is computed: web_tsv_rows.sql, oi_boxes.sql and oi_size_lines.sql join it.
-- Grain: one row per run of consecutive rejected lines. Parameters: $header_lines (0 or 1).
SELECT acc_before, max(k) AS j FROM (
    SELECT line - $header_lines - row_number() OVER (ORDER BY line) AS acc_before,
           row_number() OVER (ORDER BY line) AS k
    FROM (SELECT DISTINCT line FROM reject_errors)
) GROUP BY acc_before
