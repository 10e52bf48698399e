-- The OpenImages class-file lines (Arrow table oi_class_lines, parsed line by line by
-- xvlm/data/lake/lines.py) as lookup records for the counts and the quarantine (table cand_aux).
-- Grain: one row per class-file line (the V7 header excluded). Parameters: none.
SELECT 'classes' AS entity, file, locator, ord, reason, raw
FROM oi_class_lines
