-- Read an OpenImages box CSV (header; XMin,XMax,YMin,YMax normalised to [0, 1]) as text columns with
-- the ordinal among accepted lines. Lines the reader rejects go to reject_errors (store_rejects).
-- Grain: one row per accepted line. Parameters: $path.
SELECT *
FROM read_csv($path, header = true, delim = ',', quote = '', escape = '', all_varchar = true,
              store_rejects = true) WITH ORDINALITY AS t
