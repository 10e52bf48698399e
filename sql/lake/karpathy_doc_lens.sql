-- Element count of the Karpathy document (or document part) in table karpathy_doc, in the shape of
-- cocofmt_doc_lens.sql: the next part's $idx_base (xvlm/data/lake/sources.py, a file parsed in parts).
-- Grain: one row. Parameters: none.
SELECT coalesce(len(images), 0) AS n_images, 0 AS n_annotations FROM karpathy_doc
