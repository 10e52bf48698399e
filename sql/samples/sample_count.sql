-- Samples the plan will have: sample rows with at least one caption or concept (the number of
-- shards is derived from it before the samples table is made).
-- Grain: one row. Parameters: none.
SELECT count(*) AS n
FROM sample_rows
WHERE n_captions + n_concepts > 0
