"""One shard sample -> one typed ``ImageRecord``: the single place that knows the shard JSON schema.

Shard samples (written by ``xvlm.data.shards``) are ``key.jpg`` + ``key.json`` with
``{"key", "source", "width", "height", "captions": [str], "concepts": [{"kind": "region"|"object",
"text": str, "box": [x, y, w, h], "attributes": [str]?}]}``; boxes are in the stored image's pixel frame.
If the schema changes, only ``parse_sample`` changes.

Every defect raises ``CorruptSample`` naming the shard, key and field; the loader's handler counts and
logs it (never a silent skip).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

KINDS = ("region", "object")


class CorruptSample(ValueError):
    """A shard sample that cannot be used; the message names shard, key and field."""

    def __init__(self, shard: str, key: str, field: str, reason: str) -> None:
        super().__init__(f"{shard}: sample {key!r}: field {field!r}: {reason}")
        self.shard, self.key, self.field, self.reason = shard, key, field, reason


@dataclass(frozen=True)
class Concept:
    kind: str  # "region" | "object"
    text: str
    box: tuple[float, float, float, float]  # (x, y, w, h) pixels of the stored image
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageRecord:
    key: str
    source: str
    width: int
    height: int
    captions: tuple[str, ...]
    concepts: tuple[Concept, ...]
    jpeg: bytes
    shard: str = ""


def parse_sample(sample: dict[str, Any]) -> ImageRecord:
    """A webdataset sample dict (``__key__``, ``__url__``, ``jpg``, ``json`` bytes) -> ``ImageRecord``.

    Checks: JSON parses; width/height positive ints that match the JPEG header (read without decoding);
    captions are strings; every box lies inside the image with positive size; kind is region|object.
    """
    shard, key = str(sample.get("__url__", "?")), str(sample.get("__key__", "?"))
    for field in ("jpg", "json"):
        if not isinstance(sample.get(field), bytes | bytearray):
            raise CorruptSample(shard, key, field, "missing from the tar sample")
    try:
        meta = json.loads(sample["json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptSample(shard, key, "json", f"invalid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise CorruptSample(shard, key, "json", "not an object")
    w, h = meta.get("width"), meta.get("height")
    if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        raise CorruptSample(shard, key, "width/height", f"need positive ints, got {w!r}, {h!r}")
    try:
        with Image.open(io.BytesIO(sample["jpg"])) as im:  # header only, no pixel decode
            size = im.size
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad bytes
        raise CorruptSample(shard, key, "jpg", f"unreadable image: {e}") from e
    if size != (w, h):
        raise CorruptSample(shard, key, "width/height", f"JSON says {w}x{h}, image is {size[0]}x{size[1]}")
    captions = meta.get("captions") or []
    if not (isinstance(captions, list) and all(isinstance(c, str) for c in captions)):
        raise CorruptSample(shard, key, "captions", "must be a list of strings")
    concepts = []
    for j, c in enumerate(meta.get("concepts") or []):
        where = f"concepts[{j}]"
        if not isinstance(c, dict):
            raise CorruptSample(shard, key, where, "not an object")
        kind, text, box = c.get("kind"), c.get("text"), c.get("box")
        if kind not in KINDS:
            raise CorruptSample(shard, key, f"{where}.kind", f"must be one of {KINDS}, got {kind!r}")
        if not isinstance(text, str):
            raise CorruptSample(shard, key, f"{where}.text", "must be a string")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            raise CorruptSample(shard, key, f"{where}.box", f"need [x, y, w, h], got {box!r}")
        x, y, bw, bh = (float(v) for v in box)
        if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w + 1e-3 or y + bh > h + 1e-3:
            raise CorruptSample(shard, key, f"{where}.box", f"{box} not a positive box inside {w}x{h}")
        attrs = c.get("attributes") or []
        if isinstance(attrs, str):
            attrs = [attrs]
        concepts.append(Concept(kind, text, (x, y, min(bw, w - x), min(bh, h - y)),
                                tuple(a for a in attrs if isinstance(a, str) and a)))
    if not captions and not concepts:
        raise CorruptSample(shard, key, "captions/concepts", "sample has neither captions nor concepts")
    return ImageRecord(key, str(meta.get("source", "")), w, h, tuple(captions), tuple(concepts),
                       bytes(sample["jpg"]), shard)
