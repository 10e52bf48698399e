-- Macro json_kind(j): the JSON type of a value read as DuckDB JSON, in the words a quarantine reason
-- uses: 'null' (JSON null or key absent), 'string', 'integer' (fits BIGINT), 'big integer' (does
-- not), 'number' (finite, with a fraction or exponent), 'non-finite' (NaN / Infinity, which DuckDB's
-- reader accepts), 'boolean', 'array', 'object'. The strict typing of every JSON source is built on it
-- (docs/lake.md, "Strict JSON types"): a string where a number belongs is never silently cast.
-- Created once per ingest connection (xvlm/data/lake/sqlrun.py). Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_kind(j) AS CASE
    WHEN j IS NULL THEN 'null'
    ELSE CASE json_type(j)
        WHEN 'VARCHAR' THEN 'string'
        WHEN 'BIGINT' THEN 'integer'
        WHEN 'UBIGINT' THEN CASE WHEN TRY_CAST(CAST(j AS VARCHAR) AS BIGINT) IS NULL THEN 'big integer' ELSE 'integer' END
        WHEN 'DOUBLE' THEN CASE WHEN isfinite(TRY_CAST(CAST(j AS VARCHAR) AS DOUBLE)) THEN 'number' ELSE 'non-finite' END
        WHEN 'BOOLEAN' THEN 'boolean'
        WHEN 'ARRAY' THEN 'array'
        WHEN 'OBJECT' THEN 'object'
        WHEN 'NULL' THEN 'null'
        ELSE lower(json_type(j))
    END
END
