-- View sample_captions in lake.duckdb: the captions of each sample of a shard build, with their
-- position in the sample's caption list (1-based, as DuckDB numbers a lambda's index).
-- Grain: one row per (sample, caption). Parameters: $path (VARCHAR, the build's samples.parquet).
SELECT s.shard, s.image_key, s.source, c.caption, c.i AS caption_index
FROM read_parquet($path) AS s,
     unnest(list_transform(s.captions, lambda t, i: {'caption': t, 'i': i})) AS u(c)
