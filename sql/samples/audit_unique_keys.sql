-- Audit (zero rows expected): keys that occur more than once in the samples table or the manifest,
-- and manifest keys that are not samples.
-- Grain: one row per offending key. Parameters: none.
SELECT 'samples' AS tbl, image_key AS key, count(*) AS n, 'duplicate key' AS problem
FROM a_samples GROUP BY image_key HAVING count(*) > 1
UNION ALL
SELECT 'manifest', key, count(*), 'duplicate key' FROM a_manifest GROUP BY key HAVING count(*) > 1
UNION ALL
SELECT 'manifest', m.key, 1, 'not a sample' FROM a_manifest AS m ANTI JOIN a_samples AS s ON s.image_key = m.key
