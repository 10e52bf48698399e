-- Lake texts of the selected images, for the invariant texts in = kept + dropped: captions, and
-- box concepts (regions plus objects). One semi join over the three tables' keys, not one per table:
-- three hash tables of every selected key at once ran out of a small memory_limit (issue 15).
-- Grain: one row. Parameters: none.
WITH t AS (
    SELECT image_key, true AS is_caption FROM l_captions
    UNION ALL
    SELECT image_key, false FROM l_regions
    UNION ALL
    SELECT image_key, false FROM l_objects
)
SELECT count(*) FILTER (WHERE is_caption) AS captions, count(*) FILTER (WHERE NOT is_caption) AS concepts
FROM t SEMI JOIN sel_images USING (image_key)
