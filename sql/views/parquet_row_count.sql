-- Rows of one Parquet file (lake_stats re-checks each partition against its manifest).
-- Grain: one row. Parameters: $path (VARCHAR).
SELECT count(*) AS n FROM read_parquet($path)
