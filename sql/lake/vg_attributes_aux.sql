-- The VG attributes elements (table vg_attribute_rows) as lookup records for the counts and the
-- quarantine (table cand_aux). Grain: one row per attributes element. Parameters: none.
SELECT entity, file, locator, ord, reason, CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM vg_attribute_rows
