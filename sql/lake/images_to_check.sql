-- Images whose file must be checked on disk (exists, header readable, size): candidates with a path
-- and no parse-time reason. Grain: one row per distinct image key. Parameters: none.
SELECT image_key, any_value(path) AS path
FROM cand_images
WHERE reason IS NULL AND image_key IS NOT NULL AND path IS NOT NULL
GROUP BY image_key
ORDER BY image_key
