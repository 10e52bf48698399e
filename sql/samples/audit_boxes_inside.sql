-- Audit (zero rows expected): concepts whose box is empty or leaves its image (0.001 px tolerance
-- for float rescaling), checked on the samples table (original pixel frame).
-- Grain: one row per offending concept. Parameters: none.
SELECT s.image_key, c.kind, c.text, c.x, c.y, c.w, c.h, s.width, s.height
FROM a_samples AS s, unnest(s.concepts) AS u(c)
WHERE c.w <= 0 OR c.h <= 0 OR c.x < -0.001 OR c.y < -0.001
   OR c.x + c.w > s.width + 0.001 OR c.y + c.h > s.height + 0.001
