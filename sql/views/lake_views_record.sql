-- Table _lake_views in lake.duckdb: the view DDL as written, in order, so the next ingest can tell
-- an up-to-date database (same DDL) and leave it alone.
-- Grain: one row per DDL statement. Parameters: $ddl (VARCHAR[]).
SELECT unnest($ddl) AS ddl, unnest(range(len($ddl))) AS i
