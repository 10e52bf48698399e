-- OpenImages class descriptions (MID,name; no header in v6, a header in some versions: dropped).
-- A real CSV (names may be quoted), so the default quote handling is kept here.
-- Grain: one row per MID. Parameters: $path.
SELECT mid, any_value(name) AS name
FROM read_csv($path, header = false, delim = ',', quote = '"', columns = {'mid': 'VARCHAR', 'name': 'VARCHAR'},
              auto_detect = false)
WHERE mid <> 'LabelName'
GROUP BY mid
