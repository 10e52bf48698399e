-- The downstream splits named in $leak_splits ('dataset/split') that the lake holds, with their size:
-- a listed split with no row here was not ingested, so it could not be checked for leaks.
-- Grain: one row per found 'dataset/split'. Parameters: $leak_splits (VARCHAR[]).
SELECT dataset || '/' || split AS pair, count(*) AS n
FROM l_splits
WHERE list_contains($leak_splits, dataset || '/' || split)
GROUP BY ALL
ORDER BY ALL
