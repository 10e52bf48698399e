-- The categories[] of a COCO-format instances document (table cocofmt_doc: COCO instances,
-- Objects365) as lookup records for the counts and the quarantine (table cand_aux): they load no lake
-- table of their own (cocofmt_objects.sql takes an object's label from them) but each is counted.
-- Strict types: id an integer, name a string (else wrong_type:<field>=<kind seen>); a second record
-- of an id already listed is duplicate_id (the objects take the first record's name).
-- A file parsed in parts repeats categories in every annotations part: the caller inserts these rows
-- for its first annotations part only (xvlm/data/lake/sources.py).
-- Grain: one row per element of categories[]. Parameters: $file.
WITH c AS (SELECT unnest(categories) AS c, generate_subscripts(categories, 1) - 1 AS idx FROM cocofmt_doc),
t AS (
    SELECT c, idx, coalesce(json_check('id', c.id, ['integer']), json_check('name', c.name, ['string'])) AS type_reason
    FROM c
),
r AS (
    SELECT *, row_number() OVER (PARTITION BY type_reason IS NULL, json_text(c.id) ORDER BY idx) AS nth FROM t
)
SELECT
    'categories' AS entity, $file AS file, 'categories[' || idx || ']' AS locator, idx AS ord,
    CASE WHEN type_reason IS NOT NULL THEN type_reason WHEN nth > 1 THEN 'duplicate_id' END AS reason,
    CASE WHEN type_reason IS NOT NULL OR nth > 1 THEN CAST(to_json(c) AS VARCHAR) END AS raw
FROM r
