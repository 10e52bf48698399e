-- Macro json_text(j): a JSON scalar as the text downstream SQL casts: a string's contents (unquoted),
-- a number's digits as written by the parser; NULL for null/absent. Used only after json_check has
-- accepted the value's kind, so no string is ever cast to a number. (A JSON value's text starts with
-- '"' exactly when it is a string: no second parse.)
-- Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_text(j) AS CASE WHEN starts_with(CAST(j AS VARCHAR), '"') THEN j ->> '$' ELSE CAST(j AS VARCHAR) END
