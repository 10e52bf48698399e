-- Element counts of the COCO-format document (or document part) in table cocofmt_doc: the next
-- part's $idx_base (xvlm/data/lake/sources.py, a file parsed in parts).
-- Grain: one row. Parameters: none.
SELECT coalesce(len(images), 0) AS n_images, coalesce(len(annotations), 0) AS n_annotations FROM cocofmt_doc
