-- Accepted TSV lines (table csv_acc) with their true 1-based line number and named columns.
-- The ordinal among accepted lines is corrected for rejected lines (reject_errors) with an ASOF join:
-- accepted row #r comes after every rejected line L_j (j-th rejected, 1-based) with L_j - j < r.
-- Grain: one row per accepted line.
-- Parameters: $layout ('caption_url' | 'url_caption').
WITH rej AS (
    -- consecutive rejected lines share acc_before: keep the largest j (all of them precede the row)
    SELECT acc_before, max(j) AS j FROM (
        SELECT line - row_number() OVER (ORDER BY line) AS acc_before, row_number() OVER (ORDER BY line) AS j
        FROM (SELECT DISTINCT line FROM reject_errors)
    ) GROUP BY acc_before
)
SELECT
    acc.n + coalesce(rej.j, 0) AS line,
    CASE WHEN $layout = 'caption_url' THEN a ELSE b END AS caption,
    CASE WHEN $layout = 'caption_url' THEN b ELSE a END AS url,
    CAST(NULL AS VARCHAR) AS type_reason
FROM csv_acc AS acc
ASOF LEFT JOIN rej ON acc.n > rej.acc_before
