-- Captions of a COCO captions document (table cocofmt_doc) as candidate caption rows.
-- Grain: one row per element of annotations[].
-- Parameters: $source, $split, $file, $key_prefix, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH a AS (
    SELECT unnest(annotations) AS a, generate_subscripts(annotations, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
)
SELECT
    $key_prefix || '_' || CAST(TRY_CAST(a.image_id AS BIGINT) AS VARCHAR) AS image_key,
    $source AS source,
    $split AS split,
    a.id AS caption_id,
    a.caption AS caption,
    $file AS file,
    'annotations[' || idx || ']' AS locator,
    idx AS ord,
    CASE WHEN TRY_CAST(a.image_id AS BIGINT) IS NULL THEN 'invalid_number' END AS reason
FROM a
