-- The columns a CSV with a header must have that its header (table csv_acc) lacks; NULL when none is
-- missing. A file without them is unusable as a whole (a wrong or missing header).
-- Grain: one row. Parameters: $columns (list of column names).
SELECT list(c ORDER BY c) FILTER (WHERE c NOT IN (SELECT column_name FROM duckdb_columns() WHERE table_name = 'csv_acc'))
FROM (SELECT unnest($columns) AS c)
