-- Web-caption rows (table web_rows) joined by URL to their downloads (table web_downloads) as
-- candidate images. Key: <source>_<0-based row index> (img2dataset keys by the same index).
-- Rows whose download failed are quarantined with img2dataset's status as the reason (failed_to_download,
-- failed_to_resize; error message in detail), rows with no img2dataset record as not_downloaded;
-- a URL that is not http(s) is invalid_url; the same URL twice in one file keeps the first row
-- (duplicate_url). The same URL in two sources (CC3M vs CC12M) is kept: dedup is done downstream.
-- A row whose JSON types are wrong (SBU: type_reason) keeps that reason.
-- Grain: one row per caption-file row.
-- Parameters: $source, $split, $file, $locator_prefix ('line ' or 'image_urls[').
SELECT
    $source || '_' || (r.line - 1) AS image_key,
    $source AS source,
    $split AS split,
    CAST(r.line - 1 AS VARCHAR) AS source_id,
    d.tar_path AS path,
    d.key AS tar_key,
    r.url AS url,
    CAST(d.width AS VARCHAR) AS width,
    CAST(d.height AS VARCHAR) AS height,
    CAST(NULL AS VARCHAR) AS coco_id,
    CAST(NULL AS VARCHAR) AS flickr_id,
    d.sha256 AS sha256,
    $file AS file,
    CASE WHEN $locator_prefix = 'line ' THEN 'line ' || r.line ELSE $locator_prefix || (r.line - 1) || ']' END AS locator,
    r.line AS ord,
    CASE
        WHEN r.type_reason IS NOT NULL THEN r.type_reason
        WHEN r.url IS NULL OR NOT regexp_matches(r.url, '^https?://\S+$') THEN 'invalid_url'
        WHEN row_number() OVER (PARTITION BY r.url ORDER BY r.line) > 1 THEN 'duplicate_url'
        WHEN d.status IS NULL THEN 'not_downloaded'
        WHEN d.status <> 'success' THEN coalesce(nullif(regexp_replace(lower(d.status), '[^a-z0-9_]', '_', 'g'), ''), 'not_downloaded')
    END AS reason,
    coalesce(d.error_message, CASE WHEN d.status IS NULL THEN 'no img2dataset record for this url' END) AS detail
FROM web_rows AS r
LEFT JOIN web_downloads AS d ON d.url = r.url
