-- OpenImages box rows (table csv_acc, from oi_boxes_read) as candidate object boxes.
-- Columns are selected BY NAME from the header, so a reordered file still parses; a missing column
-- is an error naming the file. Pixel boxes are computed in final_boxes once image sizes are known
-- (coords 'xxyy_norm'). IsGroupOf=1 marks a group box. Lines the reader rejects go to reject_errors;
-- line numbers: the accepted ordinal corrected by csv_gaps (csv_gaps.sql, $header_lines = 1).
-- Grain: one row per accepted line; box_id = '<ImageID>#<line>' (the CSV has no box id).
-- Parameters: $file, $source.
WITH b AS (
    SELECT acc.*, acc."ordinality" + 1 + coalesce(g.j, 0) AS line
    FROM csv_acc AS acc ASOF LEFT JOIN csv_gaps AS g ON acc."ordinality" > g.acc_before
)
SELECT
    'objects' AS entity,
    'oi_' || b.ImageID AS image_key,
    $source AS source,
    b.ImageID || '#' || b.line AS box_id,
    b.XMin AS c0, b.XMax AS c1, b.YMin AS c2, b.YMax AS c3,
    'xxyy_norm' AS coords,
    c.name AS label,
    CAST(NULL AS VARCHAR[]) AS attributes,
    b.IsGroupOf AS is_group,
    list_filter([CASE WHEN b.IsOccluded = '1' THEN 'occluded' END, CASE WHEN b.IsTruncated = '1' THEN 'truncated' END,
                 CASE WHEN b.IsDepiction = '1' THEN 'depiction' END, CASE WHEN b.IsInside = '1' THEN 'inside' END],
                lambda x: x IS NOT NULL) AS flags,
    $file AS file,
    'line ' || b.line AS locator,
    b.line AS ord,
    CASE
        WHEN b.ImageID IS NULL OR NOT regexp_matches(b.ImageID, '^[0-9A-Za-z]+$') THEN 'invalid_id'
        WHEN c.name IS NULL THEN 'unknown_label'
    END AS reason
FROM b
LEFT JOIN oi_classes AS c ON c.mid = b.LabelName
