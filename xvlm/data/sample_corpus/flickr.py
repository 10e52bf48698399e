"""Flickr30K images and Karpathy's ``dataset_flickr30k.json`` (datasets-and-tools.md §1.2-1.3).

Same layout as ``dataset_coco.json`` but ``"dataset": "flickr30k"``, file names ``<id>.jpg``, no ``cocoid``,
and captions pre-tokenised with a space before the final period (as in ``results_20130124.token``).
"""

from __future__ import annotations

from .coco import tokens
from .common import Corpus, make_items, unique_ints


def flickr_text(caption: str) -> str:
    """Flickr30K caption style: space before the final period."""
    return caption[:-1].rstrip() + " ." if caption.endswith(".") else caption


def write_flickr30k(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("flickr30k")
    items = make_items(rng, n, photo_every=5, photo_offset=3)
    ids = unique_ints(rng, n, 100_000_000, 5_000_000_000)
    n_test = max(1, n // 7)
    n_val = max(1, n // 7)
    sentid = 0
    out = []
    for imgid, (item, fid) in enumerate(zip(items, ids, strict=True)):
        split = "test" if imgid < n_test else ("val" if imgid < n_test + n_val else "train")
        ctx.write(f"flickr30k/flickr30k-images/{fid}.jpg", item.jpeg)
        sentences = []
        for text in item.captions:
            raw = flickr_text(text)
            sentences.append({"tokens": tokens(raw), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        out.append({
            "sentids": [s["sentid"] for s in sentences], "imgid": imgid, "sentences": sentences,
            "split": split, "filename": f"{fid}.jpg",
        })
    ctx.write_json("karpathy/dataset_flickr30k.json", {"images": out, "dataset": "flickr30k"})
