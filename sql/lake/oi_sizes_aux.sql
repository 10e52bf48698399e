-- The accepted lines of the OpenImages image size index (table oi_size_lines) as lookup records for
-- the counts and the quarantine (table cand_aux, entity 'image_sizes'): they load no lake table of
-- their own (a used line gives its image's width/height) but each is counted. The lines the reader
-- rejected are added by csv_rejects.sql with the same entity. raw = the line as read (the index has
-- no quoting: the fields joined by ',').
-- Grain: one row per accepted line. Parameters: $file.
SELECT 'image_sizes' AS entity, $file AS file, 'line ' || line AS locator, line AS ord, reason,
       CASE WHEN reason IS NOT NULL THEN concat_ws(',', coalesce(image_id, ''), coalesce(width, ''),
                                                   coalesce(height, '')) END AS raw
FROM oi_size_lines
