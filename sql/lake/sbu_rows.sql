-- SBU's sbu-captions-all.json: ONE object of parallel lists {"image_urls": [...], "captions": [...],
-- "user_ids": [...]}, read whole (bounded by $max_object_size = file size), zipped by list index.
-- Grain: one row per list index; line = index + 1. n_urls / n_captions let the caller reject a file
-- whose lists differ in length (the pairing would be wrong for every row after the gap).
-- Strict types: list elements are read as DuckDB JSON; one that is not a string is quarantined
-- (type_reason wrong_type:image_urls[]=<kind> / wrong_type:captions[]=<kind>), never cast.
-- Parameters: $path, $max_object_size.
WITH d AS (
    SELECT image_urls, captions
    FROM read_json($path, format = 'unstructured', records = true, maximum_object_size = $max_object_size,
                   columns = {'image_urls': 'JSON[]', 'captions': 'JSON[]'})
)
, z AS (
    SELECT
        unnest(generate_series(1, greatest(len(image_urls), len(captions)))) AS line,
        unnest(captions) AS c,
        unnest(image_urls) AS u,
        len(image_urls) AS n_urls,
        len(captions) AS n_captions
    FROM d
)
SELECT
    line,
    CASE WHEN json_kind(c) = 'string' THEN c ->> '$' END AS caption,
    CASE WHEN json_kind(u) = 'string' THEN u ->> '$' END AS url,
    n_urls, n_captions,
    coalesce(json_check('image_urls[]', u, ['string']), json_check('captions[]', c, ['string'])) AS type_reason
FROM z
