-- Captions of a COCO captions document (table cocofmt_doc) as candidate caption rows.
-- Grain: one row per element of annotations[]. Strict types: id and image_id integers, caption a
-- string; anything else -> wrong_type:<field>=<kind seen>.
-- Parameters: $source, $split, $file, $key_prefix, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH a AS (
    SELECT unnest(annotations) AS a, generate_subscripts(annotations, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
)
SELECT
    $key_prefix || '_' || CASE WHEN json_kind(a.image_id) = 'integer' THEN CAST(a.image_id AS VARCHAR) END AS image_key,
    $source AS source,
    $split AS split,
    json_text(a.id) AS caption_id,
    CASE WHEN json_kind(a.caption) = 'string' THEN a.caption ->> '$' END AS caption,
    $file AS file,
    'annotations[' || idx || ']' AS locator,
    idx AS ord,
    coalesce(json_check('id', a.id, ['integer']), json_check('image_id', a.image_id, ['integer']),
             json_check('caption', a.caption, ['string'])) AS reason
FROM a
