-- Lake texts of the selected images, for the invariant texts in = kept + dropped: captions, and
-- box concepts (regions plus objects).
-- Grain: one row. Parameters: none.
SELECT
    (SELECT count(*) FROM l_captions WHERE image_key IN (SELECT image_key FROM sel_images)) AS captions,
    (SELECT count(*) FROM l_regions WHERE image_key IN (SELECT image_key FROM sel_images))
    + (SELECT count(*) FROM l_objects WHERE image_key IN (SELECT image_key FROM sel_images)) AS concepts
