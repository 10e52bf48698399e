-- Captions and box concepts that were not kept, with their reason (image_removed, group_box,
-- control_characters, empty_text, duplicate_text, over_limit).
-- Grain: one row per dropped caption or concept. Parameters: none.
SELECT image_key, canonical_key, source, 'caption' AS kind, caption_id AS text_id, text, reason
FROM caption_cands WHERE reason IS NOT NULL
UNION ALL
SELECT image_key, canonical_key, source, kind, concept_id, text, reason
FROM concept_cands WHERE reason IS NOT NULL
ORDER BY image_key, kind, text_id
