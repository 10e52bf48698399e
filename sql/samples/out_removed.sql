-- removed.parquet: the removed table as it is.
-- Grain: one row per removed image. Parameters: none.
SELECT * FROM removed
