"""COCO 2017 (captions, instances, val2017), Karpathy ``dataset_coco.json`` and Objects365 v2 at scale.

Record shapes and key order follow the releases (datasets-and-tools.md §1.1, §1.8): COCO instances with
polygon ``segmentation`` (RLE for crowd boxes), Objects365's float32-printed-as-double boxes (why its
file passes 4 GiB at full size). Each file is ONE top-level object written in batches of records, so
memory stays at one batch. Bad rows planted at small rates (counted in :class:`Counts`): a 3-number
bbox, an unknown category, a box outside its image, a non-numeric image id, an empty caption.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.scale.common import (
    BATCH,
    Counts,
    J,
    S,
    batches,
    choose,
    f32,
    mkparent,
    phrase_pool,
    scaled,
    split_counts,
    take,
    unique_ints,
    write_arr,
)

COCO_SIZES = np.array([(640, 480), (640, 427), (480, 640), (500, 375), (640, 360), (427, 640), (612, 612)])
INFO = {"description": "COCO 2017 Dataset (scale generator)", "url": "http://cocodataset.org", "version": "1.0",
        "year": 2017, "contributor": "COCO Consortium", "date_created": "2017/09/01"}
LICENSES = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": k, "name": f"License {k}"}
            for k in range(1, 9)]
# COCO's 80 category ids are 1..90 with gaps.
COCO_CAT_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def _pool(rng: np.random.Generator, n: int, lo: int, hi: int, mean: float, cap: bool) -> pa.Array:
    ph = phrase_pool(rng, n, lo, hi, mean)
    if cap:
        ph = [p[0].upper() + p[1:] + "." for p in ph]
    ph[1] = ph[1] + ' with an 18\\" wheel'  # an escaped quote inside a JSON string, like real captions
    return pa.array(ph)


def _polygons(rng: np.random.Generator, n: int) -> pa.Array:
    """Pool of polygon segmentations ``[[x1, y1, ...]]``, 4-60 points (COCO's mean is ~24 points)."""
    out = []
    for k in np.clip(rng.poisson(24, n), 4, 60).tolist():
        xy = np.round(rng.random(2 * k) * 600, 2)
        out.append("[[" + ", ".join(f"{v:.2f}" for v in xy) + "]]")
    return pa.array(out)


def _boxes(rng: np.random.Generator, w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    bw = np.maximum(1.0, rng.beta(1.2, 4.0, len(w)) * w)
    bh = np.maximum(1.0, rng.beta(1.2, 4.0, len(h)) * h)
    x = rng.random(len(w)) * (w - bw)
    y = rng.random(len(h)) * (h - bh)
    return x, y, bw, bh


def _open(path: Path):  # noqa: ANN202
    return mkparent(path).open("wb")


def _write_json_head(f, head: dict) -> None:  # noqa: ANN001
    """The small members first, then the caller streams the big arrays: ``{"info": ..., "licenses": [...], ``."""
    f.write(b"{" + b"".join(json.dumps(k).encode() + b": " + json.dumps(v).encode() + b", " for k, v in head.items()))


def write_coco(root: Path, scale: float, seed: int, counts: Counts) -> np.ndarray:
    """COCO 2017 captions + instances for train2017 and val2017, then Karpathy; returns the image ids
    (VG's ``coco_id`` links to them)."""
    rng = np.random.default_rng([seed, 1])
    n_tr, n_va = scaled("coco_train_images", scale), scaled("coco_val_images", scale)
    ids = rng.permutation(unique_ints(rng, n_tr + n_va, 1, 581_930))
    caps_pool = _pool(rng, 20_000, 6, 25, 10.5, cap=True)
    polys = _polygons(rng, 5_000)
    # caption and annotation ids are unique across train and val (as in the release): drawn once
    n_caps = scaled("coco_train_captions", scale), scaled("coco_val_captions", scale)
    n_insts = scaled("coco_train_instances", scale), scaled("coco_val_instances", scale)
    all_cap_ids = unique_ints(rng, sum(n_caps), 1, 830_000)[rng.permutation(sum(n_caps))]
    all_ann_ids = rng.permutation(unique_ints(rng, sum(n_insts), 1, 2_300_000))
    id_parts = {"train2017": (all_cap_ids[:n_caps[0]], np.sort(all_ann_ids[:n_insts[0]])),
                "val2017": (all_cap_ids[n_caps[0]:], np.sort(all_ann_ids[n_insts[0]:]))}
    for split, img_ids, n_cap, n_inst in (
            ("train2017", np.sort(ids[:n_tr]), scaled("coco_train_captions", scale), scaled("coco_train_instances", scale)),
            ("val2017", np.sort(ids[n_tr:]), scaled("coco_val_captions", scale), scaled("coco_val_instances", scale))):
        n = len(img_ids)
        wh = COCO_SIZES[rng.integers(0, len(COCO_SIZES), n)]
        images = _coco_images(rng, img_ids, wh, split)
        # captions: 5 per image, the rest (COCO has 5-7) spread over random images
        per = np.full(n, n_cap // n) + np.bincount(rng.integers(0, n, n_cap - n * (n_cap // n)), minlength=n)
        img_of = np.repeat(np.arange(n), per)
        cap_ids, ann_ids = id_parts[split]
        with _open(root / f"coco/annotations/captions_{split}.json") as f:
            _write_json_head(f, {"info": INFO, "licenses": LICENSES})
            f.write(b'"images": [')
            write_arr(f, images)
            f.write(b'], "annotations": [')
            for s, e in batches(n_cap):
                k = e - s
                iid = S(img_ids[img_of[s:e]])
                bad_id = rng.random(k) < 0.002
                iid = choose(bad_id, '"x"', iid)
                cap = take(caps_pool, rng.integers(0, len(caps_pool), k))
                empty = rng.random(k) < 0.003
                cap = choose(empty, "", cap)
                counts.plant("coco", "caption_bad_image_id", bad_id.sum())
                counts.plant("coco", "caption_empty", empty.sum())
                rec = J(choose(np.arange(s, e) > 0, ", ", ""), '{"image_id": ', iid,
                        ', "id": ', S(cap_ids[s:e]), ', "caption": "', cap, '"}')
                write_arr(f, rec)
            f.write(b"]}")
        counts.add("coco", "images", n)
        counts.add("coco", "captions", n_cap)
        with _open(root / f"coco/annotations/instances_{split}.json") as f:
            _write_json_head(f, {"info": INFO, "licenses": LICENSES})
            f.write(b'"images": [')
            write_arr(f, images)
            f.write(b'], "annotations": [')
            per = split_counts(rng, n_inst, n, shape=0.8)
            img_of = np.repeat(np.arange(n), per)
            for s, e in batches(n_inst):
                k = e - s
                io = img_of[s:e]
                w, h = wh[io, 0].astype(float), wh[io, 1].astype(float)
                x, y, bw, bh = _boxes(rng, w, h)
                out = rng.random(k) < 0.003  # a box mostly outside its image
                x = np.where(out, w + 10.0, x)
                crowd = rng.random(k) < 0.009
                seg = choose(crowd, J('{"counts": [', S(rng.integers(1, 5000, k)), ', 12, 40, 7], "size": [',
                                      S(wh[io, 1]), ", ", S(wh[io, 0]), "]}"),
                             take(polys, rng.integers(0, len(polys), k)))
                bbox = J(S(np.round(x, 2)), ", ", S(np.round(y, 2)), ", ", S(np.round(bw, 2)), ", ", S(np.round(bh, 2)))
                short = rng.random(k) < 0.002
                bbox = choose(short, J(S(np.round(x, 2)), ", ", S(np.round(y, 2)), ", ", S(np.round(bw, 2))), bbox)
                cat = np.array(COCO_CAT_IDS)[rng.integers(0, 80, k)]
                unknown = rng.random(k) < 0.002
                cat = np.where(unknown, 999, cat)
                counts.plant("coco", "box_outside", out.sum())
                counts.plant("coco", "bbox_3_numbers", short.sum())
                counts.plant("coco", "unknown_category", unknown.sum())
                rec = J(choose(np.arange(s, e) > 0, ", ", ""), '{"segmentation": ', seg, ', "area": ',
                        S(f32(bw * bh * 0.7)), ', "iscrowd": ', S(crowd.astype(np.int8)), ', "image_id": ',
                        S(img_ids[io]), ', "bbox": [', bbox, '], "category_id": ', S(cat), ', "id": ',
                        S(ann_ids[s:e]), "}")
                write_arr(f, rec)
            cats = [{"supercategory": "thing", "id": c, "name": f"category {c}"} for c in COCO_CAT_IDS]
            f.write(b'], "categories": ' + json.dumps(cats).encode() + b"}")
        counts.add("coco", "objects", n_inst)
    write_karpathy(root, rng, ids, caps_pool, counts)
    return ids


def _coco_images(rng: np.random.Generator, img_ids: np.ndarray, wh: np.ndarray, split: str) -> pa.Array:
    n = len(img_ids)
    name = pa.array([f"{i:012d}.jpg" for i in img_ids.tolist()])
    return J(choose(np.arange(n) > 0, ", ", ""), '{"license": ', S(rng.integers(1, 9, n)), ', "file_name": "', name,
             f'", "coco_url": "http://images.cocodataset.org/{split}/', name, '", "height": ', S(wh[:, 1]),
             ', "width": ', S(wh[:, 0]), ', "date_captured": "2013-11-14 11:18:45", "flickr_url": '
             '"http://farm4.staticflickr.com/3153/', S(rng.integers(10**9, 10**10, n)), '_z.jpg", "id": ',
             S(img_ids), "}")


def write_karpathy(root: Path, rng: np.random.Generator, ids: np.ndarray, caps_pool: pa.Array, counts: Counts) -> None:
    """``dataset_coco.json``: every COCO image, 5 sentences each, 5000 val + 5000 test (scaled) drawn from
    train2017 and val2017 alike (Karpathy's val/test come from COCO 2014 val, mostly in 2017 train)."""
    n = len(ids)
    n_eval = max(1, round(5000 * n / 123_287))
    split = np.full(n, "train", dtype=object)
    order = rng.permutation(n)
    split[order[:n_eval]] = "val"
    split[order[n_eval:2 * n_eval]] = "test"
    split[order[2 * n_eval:2 * n_eval + round(n * 0.247)]] = "restval"
    bad = rng.random(n) < 0.002  # a split name Karpathy never wrote
    split[bad] = "dev"
    counts.plant("karpathy", "invalid_split", bad.sum())
    pool = caps_pool.to_pylist()
    tok_pool = [json.dumps(p.lower().rstrip(".").replace('\\"', "").split()) for p in pool]
    with _open(root / "karpathy/dataset_coco.json") as f:
        f.write(b'{"images": [')
        for s, e in batches(n, BATCH // 5):
            parts = []
            for j in range(s, e):
                cid = int(ids[j])
                sent = rng.integers(0, len(pool), 5).tolist()
                sents = ", ".join(f'{{"tokens": {tok_pool[c]}, "raw": "{pool[c]}", "imgid": {j}, "sentid": {5 * j + q}}}'
                                  for q, c in enumerate(sent))
                fp = "val2014" if split[j] in ("val", "test", "restval") else "train2014"
                parts.append(f'{{"filepath": "{fp}", "sentids": [{", ".join(str(5 * j + q) for q in range(5))}], '
                             f'"filename": "COCO_{fp}_{cid:012d}.jpg", "imgid": {j}, "split": "{split[j]}", '
                             f'"sentences": [{sents}], "cocoid": {cid}}}')
            f.write((", " if s else "").encode() + ", ".join(parts).encode())
        f.write(b'], "dataset": "coco"}')
    counts.add("karpathy", "splits", n)


def write_objects365(root: Path, scale: float, seed: int, counts: Counts) -> None:
    """``zhiyuan_objv2_train.json``: images, annotations (heavy-tailed boxes per image), 365 categories."""
    rng = np.random.default_rng([seed, 8])
    n = scaled("o365_images", scale)
    n_box = scaled("o365_boxes", scale)
    ids = unique_ints(rng, n, 1, 2_600_000)
    w = rng.choice([1024, 800, 683, 768, 512], n).astype(np.int64)
    h = rng.choice([768, 600, 512, 1024, 683], n).astype(np.int64)
    patch = rng.integers(0, 51, n)
    per = split_counts(rng, n_box, n, shape=0.9)
    img_of = np.repeat(np.arange(n), per)
    with _open(root / "objects365/zhiyuan_objv2_train.json") as f:
        f.write(b'{"images": [')
        for s, e in batches(n):
            k = e - s
            v = np.where(patch[s:e] < 16, "v1", "v2")
            fname = J("images/", pa.array(v), "/patch", S(patch[s:e]), "/objects365_", pa.array(v), "_",
                      pa.array([f"{i:08d}" for i in ids[s:e].tolist()]), ".jpg")
            rec = J(choose(np.arange(s, e) > 0, ", ", ""), '{"height": ', S(h[s:e]), ', "id": ', S(ids[s:e]),
                    ', "license": 5, "width": ', S(w[s:e]), ', "file_name": "', fname, '", "url": ""}')
            write_arr(f, rec)
            _ = k
        f.write(b'], "annotations": [')
        for s, e in batches(n_box, 200_000):
            k = e - s
            io = img_of[s:e]
            x, y, bw, bh = _boxes(rng, w[io].astype(float), h[io].astype(float))
            out = rng.random(k) < 0.003
            x = np.where(out, w[io] + 10.0, x)
            short = rng.random(k) < 0.002
            bbox = J(S(f32(x)), ", ", S(f32(y)), ", ", S(f32(bw)), ", ", S(f32(bh)))
            bbox = choose(short, J(S(f32(x)), ", ", S(f32(y)), ", ", S(f32(bw))), bbox)
            cat = rng.integers(1, 366, k)
            unknown = rng.random(k) < 0.002
            cat = np.where(unknown, 999, cat)
            counts.plant("objects365", "box_outside", out.sum())
            counts.plant("objects365", "bbox_3_numbers", short.sum())
            counts.plant("objects365", "unknown_category", unknown.sum())
            rec = J(choose(np.arange(s, e) > 0, ", ", ""), '{"id": ', S(np.arange(s, e) + 51), ', "iscrowd": ',
                    S((rng.random(k) < 0.01).astype(np.int8)), ', "isfake": ', S((rng.random(k) < 0.005).astype(np.int8)),
                    ', "area": ', S(f32(bw * bh)), ', "isreflected": ', S((rng.random(k) < 0.003).astype(np.int8)),
                    ', "bbox": [', bbox, '], "image_id": ', S(ids[io]), ', "category_id": ', S(cat), "}")
            write_arr(f, rec)
        cats = [{"name": f"Category {c}", "id": c} for c in range(1, 366)]
        lic = [{"name": "Creative Commons Attribution 4.0 License", "id": 5,
                "url": "https://creativecommons.org/licenses/by/4.0/"}]
        f.write(b'], "categories": ' + json.dumps(cats).encode() + b', "licenses": ' + json.dumps(lic).encode() + b"}")
    counts.add("objects365", "images", n)
    counts.add("objects365", "objects", n_box)
