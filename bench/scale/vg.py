"""Visual Genome v1.2 at scale: ``image_data.json``, ``region_descriptions.json``, ``objects.json``,
``attributes.json`` - each ONE top-level array, one element per image, in the releases' key order
(region files start every element with ``"regions"``, which the range cutter of the fused pass keys on).

Images that are also in COCO carry its ``coco_id`` (the ids :func:`bench.scale.cocofmt.write_coco`
drew), so dedup and leak removal have real work at every scale. Planted: ~0.1% regions with a negative
``y`` (the real file has ~5.6K), a few boxes wider than their image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.scale.common import (
    Counts,
    J,
    S,
    batches,
    choose,
    mkparent,
    phrase_pool,
    scaled,
    split_counts,
    take,
    write_arr,
)

VG_SIZES = np.array([(800, 600), (500, 333), (1024, 768), (640, 480), (800, 533), (600, 800)])
_IMG_BATCH = 5_000  # images per written batch (~250K regions)


def _nested(f, rng: np.random.Generator, n: int, per: np.ndarray, head: str, tail_key: str,  # noqa: ANN001
            image_ids: np.ndarray, make, first_id: int) -> int:  # noqa: ANN001
    """Stream ``[{head [item, ...], tail_key: id}, ...]`` with ``per[i]`` items for image i (>= 1):
    item text from ``make(rng, image_index_array, item_ids)``; returns the next item id."""
    starts = np.concatenate([[0], np.cumsum(per)])
    item_id = first_id
    f.write(b"[")
    for s, e in batches(n, _IMG_BATCH):
        io = np.repeat(np.arange(s, e), per[s:e])
        k = len(io)
        ids = np.arange(item_id, item_id + k)
        item_id += k
        pos = np.arange(starts[s], starts[e]) - starts[io]
        first = pos == 0
        last = pos == per[io] - 1
        pre = choose(first & (io > 0), ", {" + head + "[", choose(first, "{" + head + "[", ", "))
        post = choose(last, J("], " + tail_key + ": ", S(image_ids[io]), "}"), "")
        write_arr(f, J(pre, make(rng, io, ids), post))
    f.write(b"]")
    return item_id


def write_vg(root: Path, scale: float, seed: int, coco_ids: np.ndarray | None, counts: Counts) -> None:
    rng = np.random.default_rng([seed, 2])
    n = scaled("vg_images", scale)
    image_ids = np.arange(1, n + 1) + np.cumsum(rng.random(n) < 0.02)  # mostly consecutive, some gaps
    wh = VG_SIZES[rng.integers(0, len(VG_SIZES), n)]
    vg = root / "vg"
    # image_data.json
    n_coco = min(scaled("vg_coco_overlap", scale), len(coco_ids) if coco_ids is not None else 0)
    coco = np.full(n, -1)
    if n_coco:
        coco[rng.choice(n, n_coco, replace=False)] = rng.choice(coco_ids, n_coco, replace=False)
    flickr = np.where((coco < 0) & (rng.random(n) < 0.3), rng.integers(10**8, 10**10, n), -1)
    with mkparent(vg / "image_data.json").open("wb") as f:
        f.write(b"[")
        for s, e in batches(n):
            folder = np.where(image_ids[s:e] > 2_400_000, "VG_100K_2", "VG_100K")
            folder = np.where(np.arange(s, e) % 3 == 0, "VG_100K_2", folder)
            rec = J(choose(np.arange(s, e) > 0, ", ", ""), '{"width": ', S(wh[s:e, 0]),
                    ', "url": "https://cs.stanford.edu/people/rak248/', pa.array(folder), "/", S(image_ids[s:e]),
                    '.jpg", "height": ', S(wh[s:e, 1]), ', "image_id": ', S(image_ids[s:e]), ', "coco_id": ',
                    choose(coco[s:e] >= 0, S(coco[s:e]), "null"), ', "flickr_id": ',
                    choose(flickr[s:e] >= 0, S(flickr[s:e]), "null"), "}")
            write_arr(f, rec)
        f.write(b"]")
    counts.add("vg", "images", n)
    phrases = pa.array(phrase_pool(rng, 30_000, 2, 12, 5.0))
    names = pa.array(phrase_pool(rng, 3_000, 1, 2, 1.0))
    attrs = pa.array(phrase_pool(rng, 500, 1, 1))

    def box(rng: np.random.Generator, io: np.ndarray) -> tuple[dict[str, pa.Array], int]:
        w_img, h_img = wh[io, 0], wh[io, 1]
        bw = np.maximum(1, (rng.beta(1.3, 3.0, len(io)) * w_img).astype(np.int64))
        bh = np.maximum(1, (rng.beta(1.3, 3.0, len(io)) * h_img).astype(np.int64))
        x = (rng.random(len(io)) * (w_img - bw)).astype(np.int64)
        y = (rng.random(len(io)) * (h_img - bh)).astype(np.int64)
        neg = rng.random(len(io)) < 0.001
        y = np.where(neg, -rng.integers(1, 900, len(io)), y)
        return {"w": S(bw), "h": S(bh), "x": S(x), "y": S(y)}, int(neg.sum())

    n_reg = scaled("vg_regions", scale)
    per = 1 + split_counts(rng, n_reg - n, n, shape=2.0)

    def region(rng: np.random.Generator, io: np.ndarray, ids: np.ndarray) -> pa.Array:
        b, neg = box(rng, io)
        counts.plant("vg", "region_negative_y", neg)
        # key order of the release: region_id, width, height, image_id, phrase, y, x
        return J('{"region_id": ', S(ids), ', "width": ', b["w"], ', "height": ', b["h"], ', "image_id": ',
                 S(image_ids[io]), ', "phrase": "', take(phrases, rng.integers(0, len(phrases), len(io))),
                 '", "y": ', b["y"], ', "x": ', b["x"], "}")

    with (vg / "region_descriptions.json").open("wb") as f:
        _nested(f, rng, n, per, '"regions": ', '"id"', image_ids, region, 1)
    counts.add("vg", "regions", n_reg)
    n_obj = scaled("vg_objects", scale)
    per_o = 1 + split_counts(rng, n_obj - n, n, shape=1.5)
    seed_o = int(rng.integers(0, 2**31))
    n_attr_target = scaled("vg_attributes", scale)
    p_attr = min(1.0, n_attr_target / (1.4 * n_obj))

    def obj(with_attrs: bool):  # noqa: ANN202
        def make(rng: np.random.Generator, io: np.ndarray, ids: np.ndarray) -> pa.Array:
            b, _ = box(rng, io)
            nm = take(names, rng.integers(0, len(names), len(io)))
            has = rng.random(len(io)) < p_attr
            two = rng.random(len(io)) < 0.4
            a1 = take(attrs, rng.integers(0, len(attrs), len(io)))
            a2 = take(attrs, rng.integers(0, len(attrs), len(io)))
            at = choose(has, J(', "attributes": ["', a1, choose(two, J('", "', a2), ""), '"]'), "")
            parts = ['{"synsets": ["thing.n.01"], "h": ', b["h"], ', "object_id": ', S(ids + 1_000_000),
                     ', "merged_object_ids": [], "names": ["', nm, '"], "w": ', b["w"], ', "y": ', b["y"],
                     ', "x": ', b["x"]]
            if with_attrs:
                parts.append(at)
            return J(*parts, "}")
        return make

    # objects.json and attributes.json list the same objects (same seed): attributes adds the lists.
    with (vg / "objects.json").open("wb") as f:
        _nested(f, np.random.default_rng(seed_o), n, per_o, '"objects": ', '"image_id"', image_ids, obj(False), 1)
    with (vg / "attributes.json").open("wb") as f:
        _nested(f, np.random.default_rng(seed_o), n, per_o, '"attributes": ', '"image_id"', image_ids, obj(True), 1)
    counts.add("vg", "objects", n_obj)
