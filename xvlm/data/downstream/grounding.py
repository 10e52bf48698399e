"""RefCOCO+ referring expressions with their boxes, in the reference fine-tuning's form.

The reference (``dataset/grounding_dataset.py: grounding_dataset_bbox``) reads a JSON array of
``{"image", "text", "ref_id"}`` and takes each expression's box from the REFER toolkit data:
``refs(unc).p`` (ref_id -> ann_id, split) and ``instances.json`` (ann_id -> COCO ``bbox`` [x, y, w, h];
image_id -> width / height). Its evaluation groups expressions by the ref's ``split``
(``val`` / ``testA`` / ``testB``; testA = people, testB = other objects in the real data).

The refs file is read as JSON (same list-of-dicts layout) or, for the original ``.p``, through
``load_refs_pickle``: a restricted unpickler that refuses every global, so a file can only build plain
lists / dicts / strings / numbers. Unpickling an untrusted ``.p`` with ``pickle.load`` could run code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xvlm.data.downstream.common import MAX_WORDS, DownstreamFormatError, clean_text, load_json

REFCOCO_SPLITS = ("train", "val", "testA", "testB")


@dataclass(frozen=True)
class GroundingSample:
    """One expression; ``box`` is the COCO (x, y, w, h) of the referred object in original pixels."""

    image: str
    text: str
    ref_id: int
    split: str
    box: tuple[float, float, float, float]
    width: int
    height: int


@dataclass(frozen=True)
class GroundingSplit:
    name: str
    image_root: Path
    samples: list[GroundingSample]

    def image_path(self, s: GroundingSample) -> Path:
        return self.image_root / s.image

    def by_split(self) -> dict[str, GroundingSplit]:
        """Expressions grouped by the ref's split (val / testA / testB for the reference's test files)."""
        out: dict[str, list[GroundingSample]] = {}
        for s in self.samples:
            out.setdefault(s.split, []).append(s)
        return {k: GroundingSplit(k, self.image_root, v) for k, v in out.items()}


# --------------------------------------------------------------------------------------------------------
# REFER refs: JSON or a restricted pickle
# --------------------------------------------------------------------------------------------------------


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Builds only pickle's primitive types; any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}: REFER refs hold plain lists and dicts")


def load_refs_pickle(path: str | Path) -> list[dict[str, Any]]:
    """REFER's ``refs(unc).p`` (a Python 2 pickle of a list of dicts) without executing anything.

    Python 2 byte strings are decoded as UTF-8 (strict: a bad byte is an error, not mojibake).
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        obj = _NoGlobalsUnpickler(io.BytesIO(data), encoding="utf-8", errors="strict").load()
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise DownstreamFormatError(f"{path}: not a plain REFER refs pickle: {e}") from e
    if not isinstance(obj, list):
        raise DownstreamFormatError(f"{path}: expected a list of refs, got {type(obj).__name__}")
    return obj


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """REFER refs from ``.json`` (list of ref dicts) or the original ``.p`` (restricted unpickling)."""
    path = Path(path)
    if path.suffix == ".p":
        return load_refs_pickle(path)
    refs = load_json(path)
    if not isinstance(refs, list):
        raise DownstreamFormatError(f"{path}: expected a JSON array of refs")
    return refs


# --------------------------------------------------------------------------------------------------------
# Expressions + boxes
# --------------------------------------------------------------------------------------------------------


def _ref_index(refs: list[dict[str, Any]], path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r, ref in enumerate(refs):
        for f in ("ref_id", "ann_id", "split"):
            if not isinstance(ref, dict) or f not in ref:
                raise DownstreamFormatError(f"{path}: refs[{r}]: field {f!r} missing")
        out[int(ref["ref_id"])] = ref
    return out


def _instances(path: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list) \
            or not isinstance(doc.get("images"), list):
        raise DownstreamFormatError(f"{path}: expected a COCO instances object with 'images' and 'annotations'")
    anns = {int(a["id"]): a for a in doc["annotations"]}
    images = {int(i["id"]): i for i in doc["images"]}
    return anns, images


def read_refcoco(path: str | Path, refs_path: str | Path, instances_path: str | Path,
                 image_root: str | Path, max_words: int = MAX_WORDS) -> GroundingSplit:
    """Expressions of one reference JSON file with their boxes and original image sizes.

    Errors name the file and record: unknown ``ref_id``, missing annotation or image, and boxes that are
    degenerate or leave the image (the reference asserts the same before cropping).
    """
    path, refs_path, instances_path = Path(path), Path(refs_path), Path(instances_path)
    doc = load_json(path)
    if not isinstance(doc, list) or not doc:
        raise DownstreamFormatError(f"{path}: expected a non-empty JSON array of {{image, text, ref_id}}")
    refs = _ref_index(load_refs(refs_path), refs_path)
    anns, images = _instances(instances_path)
    samples: list[GroundingSample] = []
    for r, rec in enumerate(doc):
        where = f"{path}: record {r}"
        if not isinstance(rec, dict):
            raise DownstreamFormatError(f"{where}: expected an object")
        for f in ("image", "text", "ref_id"):
            if f not in rec:
                raise DownstreamFormatError(f"{where}: field {f!r} missing")
        ref = refs.get(int(rec["ref_id"]))
        if ref is None:
            raise DownstreamFormatError(f"{where}: field 'ref_id' {rec['ref_id']} not in {refs_path}")
        ann = anns.get(int(ref["ann_id"]))
        if ann is None:
            raise DownstreamFormatError(f"{where}: ref {rec['ref_id']} names ann_id {ref['ann_id']}, "
                                        f"absent from {instances_path}")
        img = images.get(int(ann["image_id"]))
        if img is None:
            raise DownstreamFormatError(f"{where}: image_id {ann['image_id']} absent from {instances_path}")
        x, y, w, h = (float(v) for v in ann["bbox"])
        width, height = int(img["width"]), int(img["height"])
        if not (w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height):
            raise DownstreamFormatError(f"{where}: box {ann['bbox']} of ann {ann['id']} is degenerate or "
                                        f"outside its {width}x{height} image")
        if ref["split"] not in REFCOCO_SPLITS:
            raise DownstreamFormatError(f"{refs_path}: ref {ref['ref_id']}: split {ref['split']!r} unknown")
        samples.append(GroundingSample(
            image=str(rec["image"]), text=clean_text(rec["text"], f"{where}: field 'text'", max_words),
            ref_id=int(rec["ref_id"]), split=str(ref["split"]), box=(x, y, w, h), width=width, height=height))
    return GroundingSplit(path.stem, Path(image_root), samples)
