-- Audit (zero rows expected): concepts whose box is empty or leaves its image (0.001 px tolerance
-- for float rescaling), checked on the samples table (original pixel frame).
-- Grain: one row per offending concept. Parameters: none.
-- The unnest is in the select list, not a lateral join (FROM a_samples AS s, unnest(s.concepts)):
-- DuckDB plans that one as a delim join that materializes the samples table (1.5 GB at 1.65M samples,
-- 6 s; this form streams: 0.1 GB, 1 s; bench/scale/finalize.py, bench/RESULTS.md issue 15).
SELECT image_key, c.kind, c.text, c.x, c.y, c.w, c.h, width, height
FROM (SELECT image_key, width, height, unnest(concepts) AS c FROM a_samples)
WHERE c.w <= 0 OR c.h <= 0 OR c.x < -0.001 OR c.y < -0.001
   OR c.x + c.w > width + 0.001 OR c.y + c.h > height + 0.001
