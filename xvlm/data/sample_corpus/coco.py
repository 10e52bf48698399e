"""COCO 2017 captions/instances and Karpathy's ``dataset_coco.json`` over the same images.

Formats follow datasets-and-tools.md §1.1-1.2: one JSON object per file; ``bbox`` is ``[x, y, w, h]`` floats;
``segmentation`` is a polygon list for ``iscrowd=0`` and an uncompressed RLE dict for ``iscrowd=1``; crowd
annotation ids are 12-digit (``900100000000 + image_id``, beyond int32). Karpathy entries reference the same
images by ``cocoid`` with 2014 file names, and (as in reality) some Karpathy *test* images sit in train2017.
"""

from __future__ import annotations

import re

import numpy as np

from .common import Corpus, Item, make_items, unique_ints
from .scenes import KINDS, area, polygon

# Real COCO ids for the photo labels, shape kinds appended after the real maximum (90), leaving gaps as COCO does.
CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"),
    (4, "motorcycle", "vehicle"),
    (17, "cat", "animal"),
    (47, "cup", "kitchen"),
    *((91 + i, k, "shape") for i, k in enumerate(KINDS)),
)
CAT_ID = {name: cid for cid, name, _ in CATEGORIES}
INFO = {
    "description": "COCO 2017 Dataset (xvlm sample corpus)",
    "url": "http://cocodataset.org",
    "version": "1.0",
    "year": 2017,
    "contributor": "COCO Consortium",
    "date_created": "2017/09/01",
}
LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"},
]


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE: run lengths over the column-major (Fortran) flattening, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts: list[int] = []
    current, run = 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = int(v), 1
    counts.append(run)
    return counts


def tokens(text: str) -> list[str]:
    """Karpathy-style tokens: lower-case words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _image_record(rng: np.random.Generator, image_id: int, split: str, item: Item) -> dict:
    fname = f"{image_id:012d}.jpg"
    return {
        "license": int(rng.choice([1, 4])),
        "file_name": fname,
        "coco_url": f"http://images.cocodataset.org/{split}/{fname}",
        "height": item.height,
        "width": item.width,
        "date_captured": f"2013-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d} "
        f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}",
        "flickr_url": f"http://farm{int(rng.integers(1, 10))}.staticflickr.com/sample/{image_id}_z.jpg",
        "id": image_id,
    }


def write_coco(ctx: Corpus, n_train: int, n_val: int) -> None:
    """Write COCO 2017 annotations + images, then Karpathy ``dataset_coco.json`` over them."""
    rng = ctx.rng("coco")
    items = make_items(rng, n_train + n_val, photo_every=6)
    ids = unique_ints(rng, n_train + n_val, 1, 581_930)
    ann_ids = iter(unique_ints(rng, 20 * (n_train + n_val), 1, 2_000_000))
    cap_ids = iter(unique_ints(rng, 6 * (n_train + n_val), 1, 830_000))
    categories = [{"supercategory": s, "id": c, "name": n} for c, n, s in CATEGORIES]
    splits = {"train2017": list(range(n_train)), "val2017": list(range(n_train, n_train + n_val))}
    caption_ids: dict[int, list[int]] = {}
    records: dict[int, tuple[str, dict, Item]] = {}

    for split, idx in splits.items():
        images, caps, insts = [], [], []
        for i in idx:
            item, image_id = items[i], ids[i]
            rec = _image_record(rng, image_id, split, item)
            images.append(rec)
            records[image_id] = (split, rec, item)
            ctx.write(f"coco/{split}/{rec['file_name']}", item.jpeg)
            caption_ids[image_id] = []
            for text in item.captions:
                cid = next(cap_ids)
                caption_ids[image_id].append(cid)
                caps.append({"image_id": image_id, "id": cid, "caption": text})
            for label, _attrs, box in item.objects:
                if label not in CAT_ID:
                    continue  # COCO labels only its 80 categories (+ our shapes); flags, rockets stay unlabelled
                insts.append(_instance(item, label, box, image_id, next(ann_ids)))
        capfile = f"coco/annotations/captions_{split}.json"
        instfile = f"coco/annotations/instances_{split}.json"
        if split == "train2017":
            _plant_caption_quirks(ctx, caps, capfile)
            _plant_instance_quirks(ctx, rng, images, insts, records, instfile, next(ann_ids))
        for pos, rec in enumerate(images):
            if records[rec["id"]][2].image.mode == "L":
                ctx.quirks.add(
                    "coco", capfile, f"images[{pos}]", "grayscale_image", "keep:convert_rgb",
                    "single-channel JPEG (real COCO has some); loaders must .convert('RGB')",
                    image_id=rec["id"], image_file=f"coco/{split}/{rec['file_name']}",
                )
        ctx.write_json(capfile, {"info": INFO, "licenses": LICENSES, "images": images, "annotations": caps})
        ctx.write_json(
            instfile,
            {"info": INFO, "licenses": LICENSES, "images": images, "annotations": insts, "categories": categories},
        )
    ctx.shared["coco_records"] = records
    _write_karpathy(ctx, rng, records, caption_ids, n_train)


def _instance(item: Item, label: str, box: tuple[int, int, int, int], image_id: int, ann_id: int) -> dict:
    shape = next((s for s in item.scene.shapes if s.box == box), None) if item.scene else None
    x, y, w, h = box
    seg = [polygon(shape)] if shape else [[float(x), float(y), float(x + w), float(y), float(x + w), float(y + h), float(x), float(y + h)]]
    return {
        "segmentation": seg,
        "area": area(shape) if shape else float(w * h),
        "iscrowd": 0,
        "image_id": image_id,
        "bbox": [float(x), float(y), float(w), float(h)],
        "category_id": CAT_ID[label],
        "id": ann_id,
    }


def _plant_caption_quirks(ctx: Corpus, caps: list[dict], capfile: str) -> None:
    for pos, text, why in ((3, "", "empty string"), (11, "   ", "whitespace only")):
        caps[pos]["caption"] = text
        ctx.quirks.add(
            "coco", capfile, f"annotations[{pos}]", "empty_caption", "quarantine:empty_text",
            f"caption is {why}; pre_caption raises on empty text",
            image_id=caps[pos]["image_id"], annotation_id=caps[pos]["id"],
        )


def _plant_instance_quirks(
    ctx: Corpus, rng: np.random.Generator, images: list[dict], insts: list[dict],
    records: dict[int, tuple[str, dict, Item]], instfile: str, zero_id: int,
) -> None:
    # A crowd (group) box with an RLE mask over the first scene image that has >= 2 shapes of the scene.
    scene_imgs = [r for r in images if records[r["id"]][2].scene is not None]
    crowd_img = scene_imgs[1]
    item = records[crowd_img["id"]][2]
    s = item.scene.shapes[0]
    x, y, w, h = s.box
    mask = np.zeros((item.height, item.width), dtype=np.uint8)
    mask[y : y + h, x : x + w] = 1
    crowd = {
        "segmentation": {"counts": rle_counts(mask), "size": [item.height, item.width]},
        "area": int(mask.sum()),
        "iscrowd": 1,
        "image_id": crowd_img["id"],
        "bbox": [float(x), float(y), float(w), float(h)],
        "category_id": CAT_ID[s.kind],
        "id": 900_100_000_000 + crowd_img["id"],
    }
    insts.append(crowd)
    ctx.quirks.add(
        "coco", instfile, f"annotations[{len(insts) - 1}]", "crowd_box", "keep:group_box_no_region_text",
        "iscrowd=1 with RLE segmentation dict and a 12-digit (BIGINT) id; no region text from group boxes",
        image_id=crowd_img["id"], annotation_id=crowd["id"],
    )
    # A zero-width box (degenerate annotation).
    zimg = scene_imgs[2]
    zs = records[zimg["id"]][2].scene.shapes[0]
    zx, zy, _zw, zh = zs.box
    insts.append({
        "segmentation": [[float(zx), float(zy), float(zx), float(zy + zh)]],
        "area": 0.0, "iscrowd": 0, "image_id": zimg["id"], "bbox": [float(zx), float(zy), 0.0, float(zh)],
        "category_id": CAT_ID[zs.kind], "id": zero_id,
    })
    ctx.quirks.add(
        "coco", instfile, f"annotations[{len(insts) - 1}]", "zero_size_box", "quarantine:zero_size_box",
        "bbox width 0", image_id=zimg["id"], annotation_id=zero_id,
    )


def _write_karpathy(
    ctx: Corpus, rng: np.random.Generator, records: dict[int, tuple[str, dict, Item]],
    caption_ids: dict[int, list[int]], n_train: int,
) -> None:
    """Karpathy splits: val2017 images -> val/test; train2017 -> train/restval, except 2 leaked test images."""
    order = [int(i) for i in rng.permutation(sorted(records))]
    train_ids = [i for i in order if records[i][0] == "train2017"]
    val_ids = [i for i in order if records[i][0] == "val2017"]
    leaked = set(train_ids[:2])
    split_of: dict[int, str] = {}
    for k, i in enumerate(val_ids):
        split_of[i] = "test" if k % 2 == 0 else "val"
    for k, i in enumerate(train_ids):
        split_of[i] = "test" if i in leaked else ("restval" if k % 4 == 3 else "train")
    out, leaks = [], []
    for imgid, i in enumerate(order):
        _split, rec, item = records[i]
        from2014 = "val2014" if split_of[i] in ("val", "test", "restval") else "train2014"
        sentences = [
            {"tokens": tokens(t), "raw": t + " ", "imgid": imgid, "sentid": sid}
            for t, sid in zip(item.captions, caption_ids[i], strict=True)
        ]
        out.append({
            "filepath": from2014, "sentids": caption_ids[i],
            "filename": f"COCO_{from2014}_{i:012d}.jpg", "imgid": imgid,
            "split": split_of[i], "sentences": sentences, "cocoid": i,
        })
        if i in leaked:
            leaks.append((imgid, i))
    for imgid, i in leaks:
        ctx.quirks.add(
            "karpathy_coco", "karpathy/dataset_coco.json", f"images[{imgid}]", "karpathy_test_in_train",
            "keep:leak_removed_later",
            "Karpathy test image whose cocoid is also in captions/instances_train2017; filter before pretraining",
            cocoid=i, image_file=f"coco/train2017/{i:012d}.jpg",
        )
    ctx.shared["karpathy_split"] = split_of
    ctx.write_json("karpathy/dataset_coco.json", {"images": out, "dataset": "coco"})
