-- img2dataset's per-shard metadata parquet files (every input row, success or failure), one row per
-- URL: a URL that appears twice keeps its successful download. The tar of a sample is the parquet's
-- sibling NNNNN.tar; its member basename is `key`.
-- Grain: one row per distinct url.
-- Parameters: $files (list of parquet paths), $raw_root (prefix stripped to make paths relative).
SELECT url, key, status, error_message, width, height, sha256,
       replace(regexp_replace(filename, '\.parquet$', '.tar'), $raw_root || '/', '') AS tar_path
FROM read_parquet($files, filename = true, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY url ORDER BY (status = 'success') DESC, key) = 1
