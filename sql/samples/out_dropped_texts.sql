-- dropped_texts.parquet: the dropped_texts table as it is.
-- Grain: one row per dropped caption or concept. Parameters: none.
SELECT * FROM dropped_texts
