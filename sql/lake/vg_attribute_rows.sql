-- Visual Genome attributes.json (top-level array per image, streamed): one row per element of an
-- image's `attributes` list, with its outcome. Strict types: object_id an integer; `attributes` an
-- array of strings, or absent (a real VG quirk: NULL = not annotated, [] = annotated as none).
-- A second element with the same object_id -> duplicate_id.
-- Grain: one row per attributes element. Parameters: $path, $file.
WITH img AS (
    SELECT n, attributes
    FROM read_json(
        $path, format = 'array',
        columns = {'image_id': 'JSON', 'attributes': 'STRUCT(object_id JSON, attributes JSON)[]'}
    ) WITH ORDINALITY AS t(image_id, attributes, n)
),
e AS (
    SELECT n, unnest(attributes) AS a, generate_subscripts(attributes, 1) - 1 AS k FROM img
),
r AS (
    SELECT
        n, k, a,
        coalesce(json_check('object_id', a.object_id, ['integer']),
                 json_check('attributes', a.attributes, ['array', 'null']),
                 CASE WHEN json_kind(a.attributes) = 'array'
                       AND json_array_length(a.attributes) <> len(list_filter(json_extract(a.attributes, '$[*]'), lambda x: json_type(x) = 'VARCHAR'))
                      THEN 'wrong_type:attributes[]=not a string' END) AS type_reason
    FROM e
)
SELECT
    'attributes' AS entity,
    $file AS file,
    '[' || (n - 1) || '].attributes[' || k || ']' AS locator,
    (n - 1) * 100000 + k AS ord,
    CASE WHEN type_reason IS NULL THEN CAST(a.object_id AS VARCHAR) END AS object_id,
    CASE WHEN type_reason IS NULL AND a.attributes IS NOT NULL THEN from_json(a.attributes, '["VARCHAR"]') END AS attributes,
    coalesce(type_reason, CASE WHEN row_number() OVER (PARTITION BY CASE WHEN type_reason IS NULL THEN CAST(a.object_id AS VARCHAR) END
                                                       ORDER BY n, k) > 1 AND type_reason IS NULL THEN 'duplicate_id' END) AS reason,
    to_json(a) AS raw
FROM r
