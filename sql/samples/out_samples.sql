-- samples.parquet: the samples table sorted by shard, then key. The order is written down because
-- the runner sets preserve_insertion_order = false, and each shard task reads its rows with a
-- `shard =` filter that skips row groups by their min/max statistics.
-- Grain: one row per sample. Parameters: none.
SELECT * FROM samples ORDER BY shard, image_key
