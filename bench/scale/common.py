"""Shared pieces of the scale generators: real counts, scaling, text pools, batched streamed writing.

Why pools: building 25M distinct phrases or polygons in Python costs minutes; the ingest does not care
whether two records share a caption, so each record picks a string from a pool of a few thousand built
once (numpy indexes the pool; Python only joins the chosen strings, in batches, straight to the file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The released counts (datasets-and-tools.md; issue 15). Scaled counts are round(real * scale), >= 1.
REAL: dict[str, int] = {
    "coco_train_images": 118_287, "coco_train_captions": 591_753, "coco_train_instances": 860_001,
    "coco_val_images": 5_000, "coco_val_captions": 25_014, "coco_val_instances": 36_781,
    "karpathy_images": 123_287,
    "vg_images": 108_077, "vg_regions": 5_408_689, "vg_objects": 3_802_374, "vg_attributes": 2_800_000,
    "vg_coco_overlap": 51_208,
    "cc3m_rows": 3_318_333, "cc12m_rows": 12_423_374, "sbu_rows": 1_000_000,
    "o365_images": 1_742_292, "o365_boxes": 25_423_647,
    "oi_images": 1_743_042, "oi_boxes": 14_610_229, "oi_classes": 601,
}
BATCH = 50_000  # records built and written per batch (bounded memory)

_WORDS = np.array(
    ["man", "woman", "dog", "cat", "tree", "sky", "cloud", "building", "window", "car", "street", "sign", "table", "chair", "plate", "food", "pizza", "shirt", "hat", "grass", "water", "boat", "train", "bus", "clock", "wall", "floor", "light", "pole", "fence", "leaf", "rock", "snow", "wave", "white", "black", "red", "green", "blue", "yellow", "large", "small", "tall", "short", "wooden", "metal", "glass", "old", "new", "on", "in", "near", "behind", "under", "with", "of", "the", "a", "is", "are", "has", "holding", "wearing", "sitting", "standing", "two", "three", "people", "group", "field", "beach", "kitchen", "room", "bed", "giraffe", "zebra", "elephant", "horse", "sheep", "cow", "bird", "kite", "umbrella", "surfboard", "skateboard", "bench", "laptop", "phone"])


@dataclass
class Counts:
    """What a generator wrote: rows per source and entity (what ingest must report as rows_in) and
    the planted bad rows, per source, by kind."""

    rows_in: dict[str, dict[str, int]] = field(default_factory=dict)
    planted: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)

    def add(self, source: str, entity: str, n: int) -> None:
        self.rows_in.setdefault(source, {}).setdefault(entity, 0)
        self.rows_in[source][entity] += int(n)

    def plant(self, source: str, kind: str, n: int) -> None:
        self.planted.setdefault(source, {}).setdefault(kind, 0)
        self.planted[source][kind] += int(n)


def scaled(key: str, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(REAL[key] * scale))


def phrase_pool(rng: np.random.Generator, n: int, lo: int, hi: int, mean: float | None = None) -> list[str]:
    """``n`` phrases of ``lo..hi`` words (Poisson around ``mean`` when given: caption lengths are not uniform)."""
    lens = rng.integers(lo, hi + 1, n) if mean is None else np.clip(rng.poisson(mean, n), lo, hi)
    words = rng.integers(0, len(_WORDS), int(lens.sum()))
    out, k = [], 0
    for ln in lens.tolist():
        out.append(" ".join(_WORDS[words[k:k + ln]].tolist()))
        k += ln
    return out


def pick(rng: np.random.Generator, pool: list[str], n: int) -> list[str]:
    idx = rng.integers(0, len(pool), n)
    return [pool[i] for i in idx.tolist()]


def split_counts(rng: np.random.Generator, total: int, groups: int, shape: float = 1.0) -> np.ndarray:
    """``total`` items spread over ``groups`` (every group >= 0, sum exact), heavy-tailed for small
    ``shape`` (a gamma mixture: a few images carry many boxes, like the real detection sets)."""
    w = rng.gamma(shape, 1.0, groups)
    return rng.multinomial(total, w / w.sum()).astype(np.int64)


def batches(n: int, size: int = BATCH) -> Iterator[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(n, s + size)


def unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` distinct sorted ints in ``[lo, hi)`` (real ids are sparse, not 1..n)."""
    if n > hi - lo:
        raise ValueError(f"cannot draw {n} distinct ids from [{lo}, {hi})")
    out = np.unique(rng.integers(lo, hi, int(n * 1.2) + 16))
    while len(out) < n:
        out = np.unique(np.concatenate([out, rng.integers(lo, hi, n)]))
    return np.sort(rng.choice(out, n, replace=False))


def bad_mask(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


def f32(a: np.ndarray) -> list[float]:
    """Floats as the real detection files print them: float32 values written as doubles
    (``491.4300231933594``), which is what makes Objects365's annotations ~190 bytes each."""
    return a.astype(np.float32).astype(np.float64).tolist()


def mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- vectorised text (pyarrow compute)

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402


def S(a: np.ndarray | list | pa.Array) -> pa.Array:
    """Numbers as JSON/CSV text, formatted in C (Arrow's shortest round-trip form for floats)."""
    arr = a if isinstance(a, pa.Array) else pa.array(a)
    return arr.cast(pa.string())


def J(*parts: str | pa.Array) -> pa.Array:
    """Row-wise concatenation of literal strings and string arrays (one C pass, no Python per row)."""
    args = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, "")


def choose(mask: np.ndarray, yes: str | pa.Array, no: str | pa.Array) -> pa.Array:
    y = pa.scalar(yes, pa.string()) if isinstance(yes, str) else yes
    n = pa.scalar(no, pa.string()) if isinstance(no, str) else no
    return pc.if_else(pa.array(mask), y, n)


def take(pool: pa.Array, idx: np.ndarray) -> pa.Array:
    return pool.take(pa.array(idx))


def write_arr(f, arr: pa.Array) -> int:  # noqa: ANN001 - a binary file
    """Write a string array's bytes back to back (its data buffer, no per-row Python); returns bytes."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string()) if arr.type == pa.string() and arr.nbytes > (1 << 30) else arr
    width = np.int64 if arr.type == pa.large_string() else np.int32
    off = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset: arr.offset + len(arr) + 1]
    data = memoryview(arr.buffers()[2])[int(off[0]): int(off[-1])]
    f.write(data)
    return len(data)
