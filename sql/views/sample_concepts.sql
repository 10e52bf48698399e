-- View sample_concepts in lake.duckdb: the box concepts (regions, objects) of each sample of a shard
-- build, with the sample's pixel size.
-- Grain: one row per (sample, concept). Parameters: $path (VARCHAR, the build's samples.parquet).
SELECT s.shard, s.image_key, s.width, s.height, c.kind, c.text, c.attributes,
       c.x, c.y, c.w, c.h, c.source
FROM read_parquet($path) AS s,
     unnest(s.concepts) AS u(c)
