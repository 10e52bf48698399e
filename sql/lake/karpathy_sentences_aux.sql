-- The sentences of a Karpathy split file (table karpathy_doc: images[].sentences[]) as lookup records
-- for the counts and the quarantine (table cand_aux): the karpathy source loads split membership only
-- (captions come from the coco / flickr30k sources), but every sentence of its files is counted.
-- Strict types: raw a string, sentid an integer (else wrong_type:<field>=<kind seen>); reason NULL = a
-- well-formed sentence (counted as loaded).
-- Grain: one row per element of images[].sentences[]. Locator: images[<i>].sentences[<k>].
-- Parameters: $file, $idx_base (images before this document's first: a file parsed in parts; 0 when whole).
WITH im AS (SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 + $idx_base AS idx FROM karpathy_doc),
s AS (SELECT idx, unnest(i.sentences) AS s, generate_subscripts(i.sentences, 1) - 1 AS k FROM im),
t AS (
    SELECT s, idx, k, coalesce(json_check('raw', s.raw, ['string']), json_check('sentid', s.sentid, ['integer'])) AS reason
    FROM s
)
SELECT
    'sentences' AS entity, $file AS file, 'images[' || idx || '].sentences[' || k || ']' AS locator,
    idx * 100000 + k AS ord, reason,
    CASE WHEN reason IS NOT NULL THEN CAST(to_json(s) AS VARCHAR) END AS raw
FROM t
