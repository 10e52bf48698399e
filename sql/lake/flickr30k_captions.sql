-- Flickr30K captions (sentences[].raw) from Karpathy's dataset_flickr30k.json (table karpathy_doc).
-- Strict types: raw a string, sentid an integer; else wrong_type:sentences[].<field>=<kind>.
-- Grain: one row per sentence. Parameters: $file.
WITH im AS (SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 AS idx FROM karpathy_doc),
s AS (SELECT i, idx, unnest(i.sentences) AS s, generate_subscripts(i.sentences, 1) - 1 AS k FROM im)
SELECT
    'flickr30k_' || CAST(TRY_CAST(regexp_extract(i.filename ->> '$', '^(\d+)\.jpg$', 1) AS BIGINT) AS VARCHAR) AS image_key,
    'flickr30k' AS source,
    i.split ->> '$' AS split,
    json_text(s.sentid) AS caption_id,
    CASE WHEN json_kind(s.raw) = 'string' THEN s.raw ->> '$' END AS caption,
    $file AS file,
    'images[' || idx || '].sentences[' || k || ']' AS locator,
    idx * 1000 + k AS ord,
    coalesce(json_check('sentences[].raw', s.raw, ['string']), json_check('sentences[].sentid', s.sentid, ['integer'])) AS reason
FROM s
