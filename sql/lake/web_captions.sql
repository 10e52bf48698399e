-- Web-caption rows (table web_rows) as candidate captions; one caption per row, id = row index.
-- Reason: the row's JSON type fault (SBU), else none here (final_captions checks the rest).
-- Grain: one row per caption-file row.
-- Parameters: $source, $split, $file, $locator_prefix.
SELECT
    $source || '_' || (line - 1) AS image_key,
    $source AS source,
    $split AS split,
    CAST(line - 1 AS VARCHAR) AS caption_id,
    caption,
    $file AS file,
    CASE WHEN $locator_prefix = 'line ' THEN 'line ' || line ELSE 'captions[' || (line - 1) || ']' END AS locator,
    line AS ord,
    type_reason AS reason
FROM web_rows
