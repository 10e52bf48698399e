-- Box concepts (METHOD.md sections 1, 4): VG regions (kind 'region', text = phrase) and objects of every
-- source (kind 'object', text = label; attributes kept beside it, the loader prepends a random one as
-- X-VLM does), moved to their image's canonical sample with the box rescaled to the canonical image's
-- pixel frame. reason (NULL = kept), first match wins:
--   image_removed  the image is unreadable or leaked (canonical_key NULL)
--   group_box      iscrowd / IsGroupOf box and NOT $include_groups
--   control_characters  the text holds a control character other than tab, LF, CR (as captions);
--                  an attribute holding one is left out of the list, like a punctuation-only one
--   empty_text     text empty or without any letter or digit once trimmed (punctuation only)
--   over_limit     beyond $max_concepts for its sample (order: image rank, kind, concept id)
-- Grain: one row per lake region/object of a selected image.
-- Parameters: $include_groups (BOOLEAN), $max_concepts (INTEGER).
WITH c AS (
    SELECT image_key, source, 'region' AS kind, CAST(region_id AS VARCHAR) AS concept_id,
           trim(phrase) AS text, CAST([] AS VARCHAR[]) AS attributes, x, y, w, h, false AS is_group
    FROM l_regions
    UNION ALL
    SELECT image_key, source, 'object', CAST(object_id AS VARCHAR), trim(label),
           list_sort(list_distinct(list_filter(list_transform(coalesce(attributes, []), lambda a: trim(a)),
                                     lambda a: regexp_matches(a, '[\pL\pN]')
                                               AND NOT regexp_matches(a, '[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}-\x{9F}]')))),
           x, y, w, h, coalesce(is_group, false)
    FROM l_objects
),
j AS (
    SELECT c.*, o.canonical_key, o.prio,
           k.width AS cw, k.height AS ch, o.width AS ow, o.height AS oh,
           CASE
               WHEN o.canonical_key IS NULL THEN 'image_removed'
               WHEN c.is_group AND NOT $include_groups THEN 'group_box'
               WHEN regexp_matches(c.text, '[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}-\x{9F}]') THEN 'control_characters'
               WHEN c.text IS NULL OR NOT regexp_matches(c.text, '[\pL\pN]') THEN 'empty_text'
           END AS pre_reason
    FROM c
    JOIN outcomes AS o USING (image_key)
    LEFT JOIN outcomes AS k ON k.image_key = o.canonical_key
),
n AS (
    SELECT *, CASE WHEN pre_reason IS NULL THEN row_number() OVER (
                  PARTITION BY canonical_key, pre_reason IS NULL
                  ORDER BY prio, image_key, kind DESC, concept_id) END AS rank_in_sample
    FROM j
)
SELECT
    image_key, canonical_key, source, kind, concept_id, text, attributes, is_group,
    x * cw / ow AS x, y * ch / oh AS y, w * cw / ow AS w, h * ch / oh AS h,
    coalesce(pre_reason, CASE WHEN rank_in_sample > $max_concepts THEN 'over_limit' END) AS reason,
    rank_in_sample
FROM n
ORDER BY canonical_key, rank_in_sample, image_key, kind, concept_id
