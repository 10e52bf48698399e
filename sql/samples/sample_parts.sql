-- Key ranges of the canonical images for building sample_rows in parts: consecutive ranges (in
-- image_key order) of about $per_part kept texts each (an image counts its kept captions and concepts
-- plus one), so the per-sample list aggregation of one part fits in memory (DuckDB cannot spill an
-- aggregate with ORDER BY inside it; at 16M samples the whole of it did not fit: bench/RESULTS.md,
-- issue 15). lo and hi are keys of the part's first and last image (both included).
-- Grain: one row per part, in key order. Parameters: $per_part (BIGINT).
WITH t AS (
    SELECT canonical_key AS k, count(*) AS n
    FROM (SELECT canonical_key FROM caption_cands WHERE reason IS NULL
          UNION ALL
          SELECT canonical_key FROM concept_cands WHERE reason IS NULL)
    GROUP BY canonical_key
),
w AS (
    SELECT o.image_key AS k, coalesce(t.n, 0) + 1 AS n
    FROM outcomes AS o LEFT JOIN t ON t.k = o.image_key
    WHERE o.reason IS NULL
),
c AS (
    SELECT k, sum(n) OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum FROM w
)
SELECT min(k) AS lo, max(k) AS hi
FROM c
GROUP BY (cum - 1) // $per_part
ORDER BY lo
