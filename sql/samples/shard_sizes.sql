-- Samples per shard of the samples table (a shard with none has no row).
-- Grain: one row per non-empty shard. Parameters: none.
SELECT shard, count(*) AS n
FROM samples
GROUP BY shard
