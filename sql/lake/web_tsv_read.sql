-- Read a web-caption TSV (CC3M: caption<TAB>url; CC12M: url<TAB>caption; no header) as raw column
-- pairs with their ordinal among ACCEPTED lines. Quoting is OFF (quote='', escape=''): captions contain
-- unbalanced `"`. Lines the reader rejects (bad UTF-8, wrong column count) are stored in the
-- reject_errors table (store_rejects) and quarantined by csv_rejects.sql.
-- Grain: one row per accepted line. Parameters: $path.
SELECT a, b, n
FROM read_csv(
    $path, delim = '\t', header = false, quote = '', escape = '', comment = '', auto_detect = false,
    columns = {'a': 'VARCHAR', 'b': 'VARCHAR'}, store_rejects = true
) WITH ORDINALITY AS t(a, b, n)
