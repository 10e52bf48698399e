-- Images of a COCO-format document (table cocofmt_doc) as candidate image rows.
-- Grain: one row per element of images[].
-- Key: $key_prefix || '_' || id. Strict types: id integer; file_name string; width/height integers
-- (COCO and Objects365 always give them); coco_url/flickr_url/url string or null. Anything else ->
-- wrong_type:<field>=<kind seen>; an empty file_name -> missing_value.
-- Path: $image_dir || '/' || the last $path_parts components of file_name (Objects365's file_name says
-- images/v1/patchN/x.jpg but the tarballs extract to <dir>/patchN/x.jpg, so it uses 2; COCO uses 1).
-- Parameters: $source, $split, $file, $key_prefix, $image_dir, $path_parts, $id_is_coco_id, $idx_base
-- (elements before this document's first: a file parsed in parts, xvlm/data/lake/ranges.py; 0 when whole).
WITH im AS (
    SELECT unnest(images) AS i, generate_subscripts(images, 1) - 1 + $idx_base AS idx FROM cocofmt_doc
),
t AS (
    SELECT
        idx, i,
        coalesce(json_check('id', i.id, ['integer']), json_check('file_name', i.file_name, ['string']),
                 json_check('width', i.width, ['integer']), json_check('height', i.height, ['integer']),
                 json_check('coco_url', i.coco_url, ['string', 'null']),
                 json_check('flickr_url', i.flickr_url, ['string', 'null']),
                 json_check('url', i.url, ['string', 'null'])) AS type_reason,
        CASE WHEN json_kind(i.id) = 'integer' THEN CAST(i.id AS VARCHAR) END AS id,
        CASE WHEN json_kind(i.file_name) = 'string' THEN i.file_name ->> '$' END AS file_name
    FROM im
)
SELECT
    $key_prefix || '_' || id AS image_key,
    $source AS source,
    $split AS split,
    coalesce(id, json_text(i.id)) AS source_id,
    $image_dir || '/' || array_to_string(list_slice(string_split(file_name, '/'), -$path_parts, -1), '/') AS path,
    CAST(NULL AS VARCHAR) AS tar_key,
    coalesce(nullif(i.coco_url ->> '$', ''), nullif(i.url ->> '$', '')) AS url,
    json_text(i.width) AS width,
    json_text(i.height) AS height,
    CASE WHEN $id_is_coco_id THEN id END AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    CAST(NULL AS VARCHAR) AS sha256,
    $file AS file,
    'images[' || idx || ']' AS locator,
    idx AS ord,
    coalesce(type_reason, CASE WHEN file_name = '' THEN 'missing_value' END) AS reason,
    CAST(NULL AS VARCHAR) AS detail
FROM t
