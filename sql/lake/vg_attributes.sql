-- The usable VG attributes elements (table vg_attribute_rows, reason NULL) as one attribute list per
-- object_id, joined to objects.json by vg_objects.sql.
-- Grain: one row per object_id. Parameters: none.
SELECT object_id, attributes
FROM vg_attribute_rows
WHERE reason IS NULL
