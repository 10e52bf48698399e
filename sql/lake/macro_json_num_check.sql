-- Macro json_num_check(field, j, d): json_check(field, j, ['number', 'integer']) - NULL when the JSON
-- value j is a finite number that is not a 'big integer', else 'wrong_type:<field>=<kind seen>' - with
-- a fast path for the good values: d is TRY_CAST(CAST(j AS VARCHAR) AS DOUBLE), which the caller
-- computes anyway for the coordinate. A JSON text casts to a DOUBLE only when it is a number literal
-- (a string's text starts with '"'; true/false/null/[...]/{...} do not cast), and |d| < 9e18 rules out
-- a digits-only literal that does not fit BIGINT ('big integer'), so a finite d under 9e18 is exactly a
-- kind json_check accepts; every other value takes the full json_check, which gives the reason. Half
-- the strict-typing cost of VG's regions (bench/RESULTS.md, "Strict JSON types: the cost").
-- Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_num_check(field, j, d) AS CASE
    WHEN isfinite(d) AND abs(d) < 9e18 THEN NULL
    ELSE json_check(field, j, ['number', 'integer'])
END
