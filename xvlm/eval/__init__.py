"""Evaluation and fine-tuning on downstream tasks (retrieval, grounding, VQA, NLVR2, captioning)."""
