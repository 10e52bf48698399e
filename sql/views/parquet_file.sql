-- Every row of one Parquet file (or glob), as written. Used as a view body (view_ddl): the shard
-- build's tables in lake.duckdb (samples, manifest, samples_removed, samples_dropped_texts,
-- shard_quarantine) and the audits' a_samples / a_manifest / a_quarantine.
-- Grain: one row per row of the file. Parameters: $path (VARCHAR).
SELECT * FROM read_parquet($path)
