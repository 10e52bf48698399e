-- Empty candidate-boxes table, shared by regions and objects (column entity says which).
-- Grain: one row per box record read from a source file. c0..c3 are the raw coordinates, read as
-- text; coords says how to read them: 'xywh' (pixels: x, y, w, h) or 'xxyy_norm' (OpenImages:
-- XMin, XMax, YMin, YMax in [0, 1]).
-- flags: source-specific boolean marks kept as names (Objects365 isfake -> 'fake', isreflected ->
-- 'reflected'; OpenImages IsOccluded/IsTruncated/IsDepiction/IsInside -> 'occluded', ...).
-- Parameters: none.
SELECT
    CAST(NULL AS VARCHAR) AS entity, CAST(NULL AS VARCHAR) AS image_key, CAST(NULL AS VARCHAR) AS source,
    CAST(NULL AS VARCHAR) AS box_id, CAST(NULL AS VARCHAR) AS c0, CAST(NULL AS VARCHAR) AS c1,
    CAST(NULL AS VARCHAR) AS c2, CAST(NULL AS VARCHAR) AS c3, CAST(NULL AS VARCHAR) AS coords,
    CAST(NULL AS VARCHAR) AS label, CAST(NULL AS VARCHAR[]) AS attributes, CAST(NULL AS VARCHAR) AS is_group,
    CAST(NULL AS VARCHAR[]) AS flags,
    CAST(NULL AS VARCHAR) AS file, CAST(NULL AS VARCHAR) AS locator, CAST(NULL AS BIGINT) AS ord,
    CAST(NULL AS VARCHAR) AS reason
WHERE false
