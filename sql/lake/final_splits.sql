-- Candidate split rows (cand_splits) -> typed split membership; duplicate (dataset, image) rows ->
-- duplicate_id. Grain: one row per candidate. Parameters: none.
WITH c AS (
    SELECT *,
           CASE WHEN image_key IS NULL THEN 1
                ELSE row_number() OVER (PARTITION BY dataset, image_key ORDER BY ord, file, locator) END AS dup_rank
    FROM cand_splits
)
SELECT
    dataset, split, image_key,
    TRY_CAST(coco_id AS BIGINT) AS coco_id, TRY_CAST(flickr_id AS BIGINT) AS flickr_id,
    file, locator,
    coalesce(reason, CASE WHEN dup_rank > 1 THEN 'duplicate_id' END) AS reason,
    CASE WHEN coalesce(reason, CASE WHEN dup_rank > 1 THEN 'duplicate_id' END) IS NOT NULL
         THEN to_json({'dataset': dataset, 'split': split, 'image_key': image_key, 'coco_id': coco_id,
                       'flickr_id': flickr_id}) END AS raw
FROM c
