-- Images of a COCO-format document (table cocofmt_doc) as candidate image rows.
-- Grain: one row per element of images[].
-- Key: $key_prefix || '_' || id (integer ids only; anything else -> invalid_id later).
-- Path: $image_dir || '/' || the last $path_parts components of file_name (Objects365's file_name says
-- images/v1/patchN/x.jpg but the tarballs extract to <dir>/patchN/x.jpg, so it uses 2; COCO uses 1).
-- Parameters: $source, $split, $file, $key_prefix, $image_dir, $path_parts, $id_is_coco_id, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH im AS (
    SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
)
SELECT
    $key_prefix || '_' || CAST(TRY_CAST(i.id AS BIGINT) AS VARCHAR) AS image_key,
    $source AS source,
    $split AS split,
    i.id AS source_id,
    $image_dir || '/' || array_to_string(list_slice(string_split(i.file_name, '/'), -$path_parts, -1), '/') AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    coalesce(nullif(i.coco_url, ''), nullif(i.url, '')) AS url,
    i.width,
    i.height,
    CASE WHEN $id_is_coco_id THEN i.id END AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'images[' || idx || ']' AS locator,
    idx AS ord,
    CASE WHEN i.file_name IS NULL OR i.file_name = '' THEN 'missing_value' END AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM im
