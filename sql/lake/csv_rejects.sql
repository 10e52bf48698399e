-- Lines the CSV reader rejected (table reject_errors, filled by store_rejects) as quarantine rows,
-- one per entity the line would have fed. Reasons: invalid_utf8, wrong_column_count, malformed_row.
-- Grain: one row per (rejected line, entity).
-- Parameters: $file, $entities (list of entity names).
SELECT
    e.entity AS entity,
    $file AS file,
    'line ' || r.line AS locator,
    CASE
        WHEN r.error_type = 'INVALID ENCODING' THEN 'invalid_utf8'
        WHEN r.error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS') THEN 'wrong_column_count'
        ELSE 'malformed_row'
    END AS reason,
    r.csv_line AS raw
FROM (SELECT line, any_value(error_type) AS error_type, any_value(csv_line) AS csv_line
      FROM reject_errors GROUP BY line) AS r
CROSS JOIN (SELECT unnest($entities) AS entity) AS e
