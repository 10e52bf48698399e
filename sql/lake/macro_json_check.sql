-- Macro json_check(field, j, want): NULL when the JSON value j (DuckDB JSON) is of a kind in the list
-- want (json_kind's words; a number field lists both 'number' and 'integer'), else the quarantine
-- reason 'wrong_type:<field>=<kind seen>', e.g. wrong_type:image_id=string, wrong_type:bbox[2]=non-finite.
-- json_kind runs once for a good value (the ELSE branch only for the few bad ones).
-- Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_check(field, j, want) AS CASE
    WHEN list_contains(want, json_kind(j)) THEN NULL
    ELSE 'wrong_type:' || field || '=' || json_kind(j)
END
