-- Lake table `captions`: loaded captions of one source. Grain: one row per caption. Parameters: none.
SELECT image_key, source, split, caption_id, caption
FROM t_captions
WHERE reason IS NULL
