-- One row per canonical image (I, T, {(V_j, T_j)}) (METHOD.md section 1): the image (key, where its
-- bytes are, pixel size, sha256, the format sniffed from its bytes), its kept captions and its kept concepts in rank order, and the
-- sources that contributed (the image's own first). Samples with no caption and no concept are
-- kept here with n_captions = n_concepts = 0; the next step removes them as 'no_text'.
-- Run once per key range of sample_parts ($lo <= key <= $hi; every text of a sample has its key as
-- canonical_key, so a sample lies in one part whole and the parts' rows are the one-pass rows).
-- Grain: one row per canonical image in the range. Parameters: $lo (VARCHAR), $hi (VARCHAR).
WITH caps AS (
    SELECT canonical_key AS image_key,
           list(text ORDER BY rank_in_sample) AS captions,
           list(DISTINCT source) AS cap_sources
    FROM caption_cands WHERE reason IS NULL AND canonical_key BETWEEN $lo AND $hi GROUP BY canonical_key
),
cons AS (
    SELECT canonical_key AS image_key,
           list({'kind': kind, 'text': text, 'attributes': attributes, 'x': x, 'y': y, 'w': w, 'h': h,
                 'source': source} ORDER BY rank_in_sample) AS concepts,
           list(DISTINCT source) AS con_sources
    FROM concept_cands WHERE reason IS NULL AND canonical_key BETWEEN $lo AND $hi GROUP BY canonical_key
),
members AS (
    SELECT canonical_key AS image_key, list(image_key ORDER BY image_key) AS merged_keys
    FROM outcomes WHERE canonical_key BETWEEN $lo AND $hi AND canonical_key <> image_key GROUP BY canonical_key
)
SELECT
    o.image_key, o.source, o.split, o.path, o.tar_key, o.url, o.width, o.height, o.nbytes, o.sha256,
    o.image_format, o.coco_id,
    coalesce(caps.captions, CAST([] AS VARCHAR[])) AS captions,
    coalesce(cons.concepts, []) AS concepts,
    list_sort(list_distinct(list_concat([o.source], coalesce(caps.cap_sources, []),
                                        coalesce(cons.con_sources, [])))) AS sources,
    coalesce(members.merged_keys, CAST([] AS VARCHAR[])) AS merged_keys,
    len(coalesce(caps.captions, [])) AS n_captions,
    len(coalesce(cons.concepts, [])) AS n_concepts
FROM outcomes AS o
LEFT JOIN caps USING (image_key)
LEFT JOIN cons USING (image_key)
LEFT JOIN members USING (image_key)
WHERE o.reason IS NULL AND o.image_key BETWEEN $lo AND $hi
ORDER BY o.image_key
