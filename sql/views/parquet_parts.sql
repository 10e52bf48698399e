-- Every row of a set of Parquet files read as one table, columns matched by name (a file may lack a
-- column: NULL there). Used as a view body (xvlm.data.lake.sqlrun.view_ddl): the staged tables of an
-- ingest (glob of part files) and the samples step's l_<table> views (the lake partitions read).
-- Grain: one row per row of the files.
-- Parameters: $files (VARCHAR glob or VARCHAR[] of paths).
SELECT * FROM read_parquet($files, union_by_name = true)
