"""Downstream sample sets: image-text retrieval (COCO / Flickr30K) and RefCOCO+ grounding, real formats.

Why separate scenes (not the pre-training images): the fine-tuning tests must show *learning* with the
debug model in a few hundred steps, so the splits are larger than the Karpathy files of the pre-training
sources and every caption / expression is true of the pixels. Files (paths relative to the corpus root):

- Retrieval, ALBEF / X-VLM fine-tuning JSON (datasets-and-tools.md §1.2 (b)):
  ``karpathy/coco_karpathy_train.json`` (one record per caption ``{caption, image, image_id: "coco_<id>"}``),
  ``karpathy/coco_karpathy_{val,test}.json`` (one record per image, 5 captions); images
  ``coco2014/{train2014,val2014}/COCO_{folder}_{id:012d}.jpg`` with ids in [600000, 800000) (disjoint from
  every other writer's COCO ids, so no file is shared or overwritten).
  ``karpathy/flickr30k_{train,val,test}.json`` (train ``image_id`` is an int, as in the derived files);
  images ``flickr30k/flickr30k-images/<id>.jpg`` with ids >= 5e9 (the Flickr30K source uses < 5e9).
- Grounding, the reference's RefCOCO+ box fine-tuning form (``dataset/grounding_dataset.py``):
  ``refcoco+/refcoco+_{train,val,testA,testB}.json`` = ``[{image, text, ref_id}]``; REFER data as JSON:
  ``refcoco+/refs(unc).json`` (the ``refs(unc).p`` list of dicts: ref_id, ann_id, image_id, split,
  sentences, file_name, category_id, sent_ids) and ``refcoco+/instances.json`` (COCO instances of every
  shape). Images ``coco2014/train2014/``, ids in [800000, 1000000) (RefCOCO images are COCO train2014, as in reality). Shapes are
  large (28-40% of the side) so a 3x3-token debug model can localise them. As the real testA (people) /
  testB (other objects), evaluation images are split by what is referred to: testA refers only to circles
  and squares, testB only to triangles and diamonds; val refers to all kinds.

Captions and expressions come from ``scenes.captions`` / ``scenes.region_phrases``; shape names are
distinct within an image, so "the red circle left of the blue square" is unambiguous. Everything draws from
the ``downstream_retrieval`` and ``downstream_refcoco`` generators, so other sources' bytes never move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import Corpus, encode_jpeg, unique_ints
from .flickr import flickr_text
from .scenes import KINDS, Scene, Shape, captions, region_phrases, render, sample_scene

COCO_ID_RANGE = (600_000, 800_000)  # retrieval images
REFCOCO_ID_RANGE = (800_000, 1_000_000)  # grounding images
FLICKR_ID_RANGE = (5_000_000_000, 9_000_000_000)
GROUP_A = ("circle", "square")  # testA analogue of "people"
REFCOCO_CATEGORY = {k: 91 + i for i, k in enumerate(KINDS)}  # same ids as the COCO writer's shape kinds


@dataclass(frozen=True)
class RetrievalSizes:
    """Images per split; fixed here (not in ``CorpusSizes``) so the corpus manifest stays unchanged."""

    coco_train: int = 160
    coco_val: int = 24
    coco_test: int = 24
    flickr_train: int = 80
    flickr_val: int = 16
    flickr_test: int = 16
    refcoco_train: int = 160
    refcoco_val: int = 24
    refcoco_testA: int = 16  # noqa: N815 - split name as in RefCOCO+
    refcoco_testB: int = 16  # noqa: N815


def _retrieval_scene(rng: np.random.Generator) -> Scene:
    side = int(rng.integers(96, 161))
    return sample_scene(rng, side, side, int(rng.integers(2, 4)))


def write_downstream_retrieval(ctx: Corpus, sizes: RetrievalSizes | None = None) -> None:
    """Write the retrieval and grounding splits (see the module docstring)."""
    sizes = sizes or RetrievalSizes()
    _write_coco_retrieval(ctx, sizes)
    _write_flickr_retrieval(ctx, sizes)
    _write_refcoco(ctx, sizes)


def _write_coco_retrieval(ctx: Corpus, sizes: RetrievalSizes) -> None:
    rng = ctx.rng("downstream_retrieval")
    n = sizes.coco_train + sizes.coco_val + sizes.coco_test
    ids = iter(unique_ints(rng, n, *COCO_ID_RANGE))
    train: list[dict] = []
    for split, count in (("train", sizes.coco_train), ("val", sizes.coco_val), ("test", sizes.coco_test)):
        records: list[dict] = []
        for _ in range(count):
            image_id = next(ids)
            # Karpathy train images are train2014; its val/test (and restval) come from val2014
            folder = "train2014" if split == "train" else "val2014"
            rel = f"{folder}/COCO_{folder}_{image_id:012d}.jpg"
            scene = _retrieval_scene(rng)
            ctx.write(f"coco2014/{rel}", encode_jpeg(render(scene)))
            caps = captions(scene, rng, 5)
            if split == "train":
                train += [{"caption": c, "image": rel, "image_id": f"coco_{image_id}"} for c in caps]
            else:
                records.append({"image": rel, "caption": caps})
        ctx.write_json(f"karpathy/coco_karpathy_{split}.json", train if split == "train" else records)


def _write_flickr_retrieval(ctx: Corpus, sizes: RetrievalSizes) -> None:
    rng = ctx.rng("downstream_retrieval_flickr")
    n = sizes.flickr_train + sizes.flickr_val + sizes.flickr_test
    ids = iter(unique_ints(rng, n, *FLICKR_ID_RANGE))
    index = 0
    for split, count in (("train", sizes.flickr_train), ("val", sizes.flickr_val), ("test", sizes.flickr_test)):
        records: list[dict] = []
        for _ in range(count):
            fid = next(ids)
            rel = f"flickr30k-images/{fid}.jpg"
            scene = _retrieval_scene(rng)
            ctx.write(f"flickr30k/{rel}", encode_jpeg(render(scene)))
            caps = [flickr_text(c) for c in captions(scene, rng, 5)]
            if split == "train":
                records += [{"image": rel, "caption": c, "image_id": index} for c in caps]
            else:
                records.append({"image": rel, "caption": caps})
            index += 1
        ctx.write_json(f"karpathy/flickr30k_{split}.json", records)


# --------------------------------------------------------------------------------------------------------
# RefCOCO+
# --------------------------------------------------------------------------------------------------------


def _big_shape_scene(rng: np.random.Generator, kinds: tuple[str, ...] | None) -> Scene:
    """2-3 large non-overlapping shapes; with ``kinds`` the first shape's kind is drawn from it."""
    side = int(rng.integers(96, 129))
    lo, hi = int(0.28 * side), int(0.40 * side)
    colours = ("blue", "green", "orange", "purple", "red", "yellow")
    n = int(rng.integers(2, 4))
    shapes: list[Shape] = []
    used: set[tuple[str, str]] = set()
    for k in range(n):
        for _attempt in range(100):
            pool = kinds if (kinds and k == 0) else KINDS
            colour, kind = colours[int(rng.integers(len(colours)))], pool[int(rng.integers(len(pool)))]
            s = int(rng.integers(lo, hi + 1))
            x, y = int(rng.integers(2, side - s - 1)), int(rng.integers(2, side - s - 1))
            box = (x, y, s, s)
            if (colour, kind) in used or any(_overlap(box, o.box) for o in shapes):
                continue
            used.add((colour, kind))
            shapes.append(Shape(colour, kind, box, ""))
            break
        if not shapes:
            raise RuntimeError("could not place the first shape")  # pragma: no cover - canvas is large enough
    median = float(np.median([s.box[2] for s in shapes]))
    sized = tuple(Shape(s.colour, s.kind, s.box, "large" if s.box[2] > median else "small") for s in shapes)
    return Scene(width=side, height=side, shapes=sized)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int = 3) -> bool:
    return not (a[0] + a[2] + margin <= b[0] or b[0] + b[2] + margin <= a[0]
                or a[1] + a[3] + margin <= b[1] or b[1] + b[3] + margin <= a[1])


def _write_refcoco(ctx: Corpus, sizes: RetrievalSizes) -> None:
    rng = ctx.rng("downstream_refcoco")
    plan = (("train", sizes.refcoco_train, None), ("val", sizes.refcoco_val, None),
            ("testA", sizes.refcoco_testA, GROUP_A),
            ("testB", sizes.refcoco_testB, tuple(k for k in KINDS if k not in GROUP_A)))
    n = sum(c for _, c, _ in plan)
    image_ids = iter(unique_ints(rng, n, *REFCOCO_ID_RANGE))
    ann_ids = iter(unique_ints(rng, 4 * n, 1_700_000, 2_300_000))
    images, anns, refs = [], [], []
    ref_id, sent_id = 0, 0
    for split, count, kinds in plan:
        records: list[dict] = []
        for _ in range(count):
            image_id = next(image_ids)
            fname = f"COCO_train2014_{image_id:012d}.jpg"
            scene = _big_shape_scene(rng, kinds)
            ctx.write(f"coco2014/train2014/{fname}", encode_jpeg(render(scene)))
            images.append({"file_name": fname, "height": scene.height, "width": scene.width, "id": image_id})
            phrases = dict(region_phrases(scene))
            for s in scene.shapes:
                ann_id = next(ann_ids)
                anns.append({"segmentation": [], "area": float(s.box[2] * s.box[3]), "iscrowd": 0,
                             "image_id": image_id, "bbox": [float(v) for v in s.box],
                             "category_id": REFCOCO_CATEGORY[s.kind], "id": ann_id})
                if kinds is not None and s.kind not in kinds:
                    continue  # testA / testB refer only to their group's objects
                texts = [phrases[s], f"{s.colour} {s.kind}", f"the {s.size} {s.name}"]
                sents = []
                for t in texts:
                    sents.append({"tokens": t.split(), "raw": t, "sent_id": sent_id, "sent": t})
                    records.append({"image": f"train2014/{fname}", "text": t, "ref_id": ref_id})
                    sent_id += 1
                refs.append({"sent_ids": [x["sent_id"] for x in sents], "file_name": f"{fname[:-4]}_{ann_id}.jpg",
                             "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split,
                             "sentences": sents, "category_id": REFCOCO_CATEGORY[s.kind]})
                ref_id += 1
        ctx.write_json(f"refcoco+/refcoco+_{split}.json", records)
    categories = [{"supercategory": "shape", "id": c, "name": k} for k, c in REFCOCO_CATEGORY.items()]
    ctx.write_json("refcoco+/instances.json", {"images": images, "annotations": anns, "categories": categories})
    ctx.write_json("refcoco+/refs(unc).json", refs)
