-- Images of the recipe's sources, before any filtering: what the image probe reads.
-- coco_id: the lake's, else (source coco only) the 12-digit number in the file name, which COCO 2014
-- (COCO_train2014_000000123456.jpg) and 2017 (000000123456.jpg) names share.
-- prio: position of the source in the recipe (1 = first): the dedup tie-break (lower wins).
-- Grain: one row per lake image of a selected source. Parameters: $sources (VARCHAR[]).
SELECT
    i.image_key, i.source, list_position($sources, i.source) AS prio, i.split, i.path, i.tar_key, i.url,
    i.width, i.height,
    coalesce(i.coco_id, CASE WHEN i.source = 'coco'
                             THEN TRY_CAST(regexp_extract(i.path, '(\d{12})\.[A-Za-z]+$', 1) AS BIGINT) END) AS coco_id,
    i.flickr_id, i.sha256 AS lake_sha256
FROM l_images AS i
WHERE list_contains($sources, i.source)
ORDER BY i.image_key
