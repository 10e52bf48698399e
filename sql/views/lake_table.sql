-- A lake table in lake.duckdb: its partition of every source, <lake>/<table>/source=*/part-0.parquet
-- by absolute path (DuckDB resolves relative paths against the working directory, not the database).
-- The source column is stored in the files, so Hive partitioning is off.
-- Grain: one row per row of the table. Parameters: $files (VARCHAR glob).
SELECT * FROM read_parquet($files, hive_partitioning = false)
