"""Synthetic webdataset shards in the shard schema (``xvlm.data.loader.records``) from shape scenes.

The images come from ``xvlm.data.sample_corpus.scenes`` so captions, region phrases and boxes are true of
the pixels: a tiny model can learn from them (learning test), and region geometry can be checked exactly.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from xvlm.data.sample_corpus import scenes


def scene_sample(rng: np.random.Generator, key: str, size: tuple[int, int] = (160, 128),
                 n_shapes: int = 3, kind: str = "both") -> dict:
    """One shard sample dict (``__key__``, ``jpg`` bytes, ``json`` bytes)."""
    sc = scenes.sample_scene(rng, size[0], size[1], n_shapes)
    buf = io.BytesIO()
    scenes.render(sc).save(buf, format="JPEG", quality=90)
    concepts = []
    if kind in ("both", "region"):
        concepts += [{"kind": "region", "text": t, "box": list(s.box)} for s, t in scenes.region_phrases(sc)]
        concepts += [{"kind": "object", "text": n, "box": list(s.box), "attributes": a}
                     for s, n, a in scenes.object_labels(sc)]
    caps = scenes.captions(sc, rng, 3) if kind in ("both", "image") else []
    meta = {"key": key, "source": "scenes", "width": size[0], "height": size[1], "captions": caps,
            "concepts": concepts}
    return {"__key__": key, "jpg": buf.getvalue(), "json": json.dumps(meta).encode()}


def write_shards(out: Path, n_images: int, n_shards: int, seed: int = 0, size: tuple[int, int] = (160, 128),
                 extra: dict[int, list[dict]] | None = None, kinds: tuple[str, ...] = ("both", "image", "region"),
                 prefix: str = "scenes", key_prefix: str = "img") -> list[str]:
    """``n_images`` scene samples ``{key_prefix}_%06d`` over ``n_shards`` tars ``{prefix}-%06d.tar``; sample i is of kind
    ``kinds[i % len(kinds)]`` ("image": captions only, like CC3M; "region": boxes only; "both");
    ``extra[i]`` appends raw samples (e.g. corrupt ones) to shard i. Returns the shard paths."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(n_shards):
        path = out / f"{prefix}-{s:06d}.tar"
        with wds.TarWriter(str(path), mtime=0) as w:
            for i in range(s, n_images, n_shards):
                w.write(scene_sample(rng, f"{key_prefix}_{i:06d}", size, int(rng.integers(2, 5)),
                                     kinds[i % len(kinds)]))
            for raw in (extra or {}).get(s, []):
                w.write(raw)
        paths.append(str(path))
    return paths


def jpeg_bytes(w: int, h: int, colour: tuple[int, int, int] = (90, 90, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="JPEG")
    return buf.getvalue()
