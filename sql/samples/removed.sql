-- Everything that does not become a sample, with its reason: images removed by image_outcomes
-- (unreadable, leak, duplicate_*; kept_as = the sample that received its annotations) and samples
-- left without any text ('no_text'). Nothing disappears silently.
-- Grain: one row per removed image. Parameters: none.
SELECT image_key, source, reason, detail, canonical_key AS kept_as, path, coco_id
FROM outcomes WHERE reason IS NOT NULL
UNION ALL
SELECT image_key, source, 'no_text', NULL, NULL, path, coco_id
FROM sample_rows WHERE n_captions + n_concepts = 0
ORDER BY image_key
