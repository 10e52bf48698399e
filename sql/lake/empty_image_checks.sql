-- Empty image-file check table (filled from Python: PIL reads JPEG headers, no decode).
-- Grain: one row per checked image. status: 'ok' | 'missing' | 'unreadable' | 'corrupt' |
-- 'too_small' (xvlm/data/lake/images.py).
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS image_key, CAST(NULL AS VARCHAR) AS status,
    CAST(NULL AS INTEGER) AS file_width, CAST(NULL AS INTEGER) AS file_height
WHERE false
