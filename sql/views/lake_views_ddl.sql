-- The view DDL recorded in lake.duckdb's _lake_views table, in the order it was run.
-- Grain: one row per DDL statement. Parameters: none.
SELECT ddl FROM _lake_views ORDER BY i
