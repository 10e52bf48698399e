-- SBU's sbu-captions-all.json: ONE object of parallel lists {"image_urls": [...], "captions": [...],
-- "user_ids": [...]}, read whole (bounded by $max_object_size = file size), zipped by list index.
-- Grain: one row per list index; line = index + 1. n_urls / n_captions let the caller reject a file
-- whose lists differ in length (the pairing would be wrong for every row after the gap).
-- Parameters: $path, $max_object_size.
WITH d AS (
    SELECT image_urls, captions
    FROM read_json($path, format = 'unstructured', records = true, maximum_object_size = $max_object_size,
                   columns = {'image_urls': 'VARCHAR[]', 'captions': 'VARCHAR[]'})
)
SELECT
    unnest(generate_series(1, greatest(len(image_urls), len(captions)))) AS line,
    unnest(captions) AS caption,
    unnest(image_urls) AS url,
    len(image_urls) AS n_urls,
    len(captions) AS n_captions
FROM d
