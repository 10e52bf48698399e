-- The samples table: sample rows with at least one text, each assigned to a shard by a stable hash
-- of (recipe seed, key): the first 60 bits of md5('<seed>:<key>') mod $n_shards, so the assignment
-- is reproducible in any language and does not depend on row order or worker count.
-- Grain: one row per sample. Parameters: $n_shards (INTEGER), $seed (INTEGER).
SELECT
    CAST(CAST(('0x' || md5(CAST($seed AS VARCHAR) || ':' || image_key)[1:15]) AS UBIGINT) % $n_shards
         AS INTEGER) AS shard,
    *
FROM sample_rows
WHERE n_captions + n_concepts > 0
ORDER BY shard, image_key
