"""Readers of the downstream evaluation formats and the evaluation-time image transform.

- ``retrieval``: Karpathy ``dataset_{coco,flickr30k}.json`` and the ALBEF / X-VLM fine-tuning JSON
  (``coco_karpathy_*.json``, ``flickr30k_*.json``) -> ``RetrievalSplit``; the lake's ``splits`` table as a
  cross-check of split membership.
- ``grounding``: RefCOCO+ expressions ``{image, text, ref_id}`` + boxes from the REFER refs (JSON, or the
  ``.p`` pickle through a restricted loader) and ``instances.json`` -> ``GroundingSplit``.
- ``images``: square bicubic resize + CLIP normalisation (the reference's test transform) and the
  box-preserving training crop.

Every reader fails with a ``DownstreamFormatError`` naming the file, the record and the field.
"""

from xvlm.data.downstream.common import DownstreamFormatError, clean_text

__all__ = ["DownstreamFormatError", "clean_text"]
