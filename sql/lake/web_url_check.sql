-- Rows of table web_rows, and those whose url column holds no http(s) URL: when most rows have none,
-- the caption and url columns are swapped and the file is refused (xvlm/data/lake/sources.py).
-- Grain: one row. Parameters: none.
SELECT count(*) AS n,
       count(*) FILTER (WHERE url IS NULL OR NOT regexp_matches(url, '^https?://')) AS no_url
FROM web_rows
