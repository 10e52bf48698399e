"""Shared pieces of the per-source writers: the image item, deterministic byte encoders, the run context.

Why one ``Item`` type: every source (COCO, VG, CC3M, Objects365 ...) needs the same facts about an image
(pixels, captions, labelled boxes, region phrases); building them once from a shape scene or a real photo
keeps the text true of the pixels in every format.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import photos, scenes
from .quirks import QuirkLog

JPEG_QUALITY = 90
Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass
class Item:
    """One image with its text; ``objects`` = (label, attributes, box), ``regions`` = (phrase, box)."""

    image: Image.Image
    captions: list[str]
    objects: list[tuple[str, list[str], Box]]
    regions: list[tuple[str, Box]]
    scene: scenes.Scene | None = None
    photo: str | None = None
    _jpeg: bytes | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return self.image.size[0]

    @property
    def height(self) -> int:
        return self.image.size[1]

    @property
    def jpeg(self) -> bytes:
        if self._jpeg is None:
            self._jpeg = encode_jpeg(self.image)
        return self._jpeg


def encode_jpeg(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Baseline JPEG, fixed quality, no EXIF/ICC: identical bytes for identical pixels."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


def dump_json(obj: Any, indent: int | None = None) -> bytes:
    """Compact, key-order-preserving JSON (the real COCO/VG files are single-line)."""
    seps = (",", ":") if indent is None else (",", ": ")
    return json.dumps(obj, separators=seps, ensure_ascii=False, indent=indent).encode("utf-8")


def scene_item(rng: np.random.Generator, min_side: int = 128, max_side: int = 256) -> Item:
    """A fresh shape scene (2-4 shapes) with captions, region phrases and object labels from it."""
    w = int(rng.integers(min_side, max_side + 1))
    h = int(rng.integers(min_side, max_side + 1))
    n = int(rng.integers(2, 5))
    sc = scenes.sample_scene(rng, w, h, n)
    return Item(
        image=scenes.render(sc),
        captions=scenes.captions(sc, rng, 5),
        objects=[(label, attrs, s.box) for s, label, attrs in scenes.object_labels(sc)],
        regions=[(phrase, s.box) for s, phrase in scenes.region_phrases(sc)],
        scene=sc,
    )


def photo_item(index: int, max_side: int = 320) -> Item:
    """Real photo number ``index`` (cycled) with its captions and eyeballed boxes."""
    p = photos.PHOTOS[index % len(photos.PHOTOS)]
    img = photos.load(p, max_side)
    objs: list[tuple[str, list[str], Box]] = []
    for label, attrs, norm in p.objects:
        objs.append((label, list(attrs), photos.pixel_box(norm, img.size[0], img.size[1])))
    regions = [(f"the {' '.join(a)} {lbl}".replace("  ", " "), b) for lbl, a, b in objs]
    return Item(image=img, captions=list(p.captions), objects=objs, regions=regions, photo=p.name)


def make_items(rng: np.random.Generator, n: int, photo_every: int = 6, photo_offset: int = 0) -> list[Item]:
    """``n`` items, every ``photo_every``-th a real photo (cycling through them from ``photo_offset``)."""
    items: list[Item] = []
    k = photo_offset
    for i in range(n):
        if photo_every and i % photo_every == photo_every - 1:
            items.append(photo_item(k))
            k += 1
        else:
            items.append(scene_item(rng))
    return items


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> list[int]:
    """``n`` distinct ints in ``[low, high)`` in sampled order (dataset ids look random, never sequential)."""
    vals = rng.choice(high - low, size=n, replace=False) + low
    return [int(v) for v in vals]


class Corpus:
    """Run context: output root, quirk log, and facts one writer leaves for another (shared images, URLs)."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.quirks = QuirkLog()
        self.shared: dict[str, Any] = {}
        self._children: dict[str, np.random.Generator] = {}

    def rng(self, source: str) -> np.random.Generator:
        """An independent generator per source, keyed by name (adding a source never shifts another's draws)."""
        if source not in self._children:
            key = [int(b) for b in source.encode("utf-8")]
            self._children[source] = np.random.default_rng(np.random.SeedSequence([self.seed, *key]))
        return self._children[source]

    def write(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write(rel, dump_json(obj))
