-- Macro json_kind(j): the JSON type of a value read as DuckDB JSON, in the words a quarantine reason
-- uses: 'null' (JSON null or key absent), 'string', 'integer' (digits only, fits BIGINT), 'big
-- integer' (digits only, does not fit), 'number' (finite, with a fraction or exponent), 'non-finite'
-- (NaN / Infinity, which DuckDB's reader accepts), 'boolean', 'array', 'object'. The strict typing of
-- every JSON source is built on it (docs/lake.md, "Strict JSON types"): a string where a number belongs
-- is never silently cast. It reads the value's first character (a JSON value's text says its type
-- there) instead of json_type(), which parses the value again: half the cost on VG's 5.4M regions.
-- Created once per ingest connection (xvlm/data/lake/sqlrun.py). Grain: n/a (a macro). Parameters: none.
CREATE OR REPLACE MACRO json_kind(j) AS CASE
    WHEN j IS NULL THEN 'null'
    ELSE CASE left(CAST(j AS VARCHAR), 1)
        WHEN '"' THEN 'string'
        WHEN '[' THEN 'array'
        WHEN '{' THEN 'object'
        WHEN 't' THEN 'boolean'
        WHEN 'f' THEN 'boolean'
        WHEN 'n' THEN 'null'
        WHEN 'N' THEN 'non-finite'
        WHEN 'I' THEN 'non-finite'
        ELSE CASE
            WHEN NOT isfinite(TRY_CAST(CAST(j AS VARCHAR) AS DOUBLE)) THEN 'non-finite'
            WHEN contains(CAST(j AS VARCHAR), '.') OR contains(CAST(j AS VARCHAR), 'e')
              OR contains(CAST(j AS VARCHAR), 'E') THEN 'number'
            WHEN TRY_CAST(CAST(j AS VARCHAR) AS BIGINT) IS NULL THEN 'big integer'
            ELSE 'integer'
        END
    END
END
