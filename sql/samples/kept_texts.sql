-- Captions and concepts kept in the samples table (NULLs when it is empty).
-- Grain: one row. Parameters: none.
SELECT sum(n_captions) AS captions, sum(n_concepts) AS concepts
FROM samples
