-- Macro json_int_check(field, j, t): json_check(field, j, ['integer']) - NULL when the JSON value j is
-- an integer that fits BIGINT, else 'wrong_type:<field>=<kind seen>' - with a fast path for the good
-- values: t is CAST(j AS VARCHAR), which the caller keeps as the id's text. A JSON text that casts to
-- BIGINT is a number literal (a string's text starts with '"'); DuckDB's cast also accepts '1.5' and
-- '1e3' (rounding), so a text with '.', 'e' or 'E' is left to the full check, which names it 'number'.
-- Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_int_check(field, j, t) AS CASE
    WHEN TRY_CAST(t AS BIGINT) IS NOT NULL AND NOT contains(t, '.') AND NOT contains(t, 'e')
         AND NOT contains(t, 'E') THEN NULL
    ELSE json_check(field, j, ['integer'])
END
