-- Lines the CSV reader rejected (table reject_errors, filled by store_rejects) as quarantine rows,
-- one per entity the line would have fed. Reasons: invalid_utf8, wrong_column_count, malformed_row,
-- or - for a line replaced by a marker before the read (Arrow table line_faults, from
-- xvlm/data/lake/lines.py) - its own reason (mixed_line_ending, stray_carriage_return, nul_byte,
-- blank_line) and its raw bytes.
-- Grain: one row per (rejected line, entity).
-- Parameters: $file, $entities (list of entity names).
SELECT
    e.entity AS entity,
    $file AS file,
    'line ' || r.line AS locator,
    coalesce(f.reason, CASE
        WHEN r.error_type = 'INVALID ENCODING' THEN 'invalid_utf8'
        WHEN r.error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS') THEN 'wrong_column_count'
        ELSE 'malformed_row'
    END) AS reason,
    coalesce(f.raw, r.csv_line) AS raw
FROM (SELECT line, any_value(error_type) AS error_type, any_value(csv_line) AS csv_line
      FROM reject_errors GROUP BY line) AS r
LEFT JOIN line_faults AS f ON f.line = r.line
CROSS JOIN (SELECT unnest($entities) AS entity) AS e
