-- The URL list img2dataset reads for one web-caption source: the caption rows (table web_rows, made by
-- lake/web_tsv_rows.sql or lake/sbu_rows.sql, the same parse the ingest later joins the downloads back
-- on) whose url is http(s), a repeated URL once (its first row), in file order, so a rerun over the
-- same file gives img2dataset the same shards (its incremental mode resumes by shard number).
-- Grain: one row per distinct url.
-- Parameters: none.
SELECT url, caption
FROM web_rows
WHERE url IS NOT NULL AND regexp_matches(url, '^https?://\S+$')
QUALIFY row_number() OVER (PARTITION BY url ORDER BY line) = 1
ORDER BY line
