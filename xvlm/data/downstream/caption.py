"""COCO captioning (Karpathy split) readers, and the reference's caption text cleaning.

Two input layouts are accepted, both real:
- ALBEF/BLIP's ``coco_karpathy_{train,val,test}.json`` (what the X-VLM reference reads): train = one record
  per caption ``{caption, image, image_id}``; val/test = one record per image ``{image, caption: [...]}``;
  ``image`` is relative to the COCO 2014 root (``val2014/COCO_val2014_000000391895.jpg``).
- Karpathy's own ``dataset_coco.json`` (``images[*].{filepath, filename, split, cocoid, sentences[*].raw}``),
  where ``restval`` counts as train.
Both give ``CaptionImage`` records: one per image, all its captions. Image ids are COCO ids, which is what
the pycocoevalcap ground truth (``coco_karpathy_{split}_gt.json``) keys on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xvlm.errors import BadInput, MissingInput

_DROP = re.compile(r"[,.'!?\"()*#:;~]")
_SPACE = re.compile(r"\s{2,}")


def pre_caption(text: str, max_words: int = 30) -> str:
    """The reference's ``pre_caption``: lower-case, drop ``,.'!?"()*#:;~``, ``-``/``/`` to spaces, collapse.

    Raises on an empty result (the reference does too): an empty caption is a data error, not a sample.
    """
    out = _DROP.sub("", text.lower()).replace("-", " ").replace("/", " ").replace("<person>", "person")
    out = _SPACE.sub(" ", out).rstrip("\n").strip()
    if not out:
        raise BadInput(f"caption {text!r} is empty after cleaning")
    return " ".join(out.split(" ")[:max_words])


@dataclass(frozen=True)
class CaptionImage:
    image_id: int  # COCO id
    image: Path
    captions: tuple[str, ...]  # raw captions as in the file


def coco_id_from_filename(name: str) -> int:
    """``.../COCO_val2014_000000391895.jpg`` or ``000000391895.jpg`` -> 391895."""
    m = re.search(r"(\d+)\.(?:jpg|jpeg|png)$", name)
    if not m:
        raise BadInput(f"cannot read a COCO image id from file name {name!r}")
    return int(m.group(1))


def _load_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: invalid JSON: {e}") from e


def _field(rec: object, key: str, path: Path, row: int) -> object:
    if not isinstance(rec, dict) or key not in rec:
        raise BadInput(f"{path}: row {row}: missing field {key!r}")
    return rec[key]


def read_karpathy_split(path: str | Path, image_root: str | Path, check_images: bool = True) -> list[CaptionImage]:
    """Read an ALBEF-style ``coco_karpathy_{split}.json`` (train or val/test layout) into one record per image."""
    path, image_root = Path(path), Path(image_root)
    data = _load_json(path)
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a JSON list of records")
    by_image: dict[int, tuple[Path, list[str]]] = {}
    for row, rec in enumerate(data):
        rel = _field(rec, "image", path, row)
        caps = _field(rec, "caption", path, row)
        caps = [caps] if isinstance(caps, str) else caps
        if not isinstance(rel, str) or not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise BadInput(f"{path}: row {row}: 'image' must be a string and 'caption' a string or list of strings")
        image_id = coco_id_from_filename(rel)
        entry = by_image.setdefault(image_id, (image_root / rel, []))
        entry[1].extend(caps)
    out = [CaptionImage(i, p, tuple(c)) for i, (p, c) in by_image.items()]
    if check_images:
        _check_images(out, path)
    return out


def read_karpathy_dataset(path: str | Path, coco_root: str | Path, split: str,
                          check_images: bool = True) -> list[CaptionImage]:
    """Read Karpathy's ``dataset_coco.json`` for ``split`` ("train" includes "restval", as the reference)."""
    path, coco_root = Path(path), Path(coco_root)
    data = _load_json(path)
    if not isinstance(data, dict) or "images" not in data:
        raise BadInput(f"{path}: expected an object with 'images'")
    keep = {"train", "restval"} if split == "train" else {split}
    out = []
    for row, rec in enumerate(data["images"]):
        if _field(rec, "split", path, row) not in keep:
            continue
        sents = _field(rec, "sentences", path, row)
        rel = Path(str(_field(rec, "filepath", path, row))) / str(_field(rec, "filename", path, row))
        out.append(CaptionImage(int(_field(rec, "cocoid", path, row)), coco_root / rel,
                                tuple(str(_field(s, "raw", path, row)).strip() for s in sents)))
    if check_images:
        _check_images(out, path)
    return out


def _check_images(records: Sequence[CaptionImage], source: Path) -> None:
    missing = [r for r in records if not r.image.is_file()]
    if missing:
        raise MissingInput(f"{source}: {len(missing)} image(s) missing, e.g. {missing[0].image} "
                                f"(image_id {missing[0].image_id})")


def read_gt_json(path: str | Path) -> dict[int, list[str]]:
    """A COCO-format caption ground truth (``coco_karpathy_test_gt.json``) -> captions per image id."""
    path = Path(path)
    data = _load_json(path)
    out: dict[int, list[str]] = {int(im["id"]): [] for im in _field(data, "images", path, 0)}
    for row, ann in enumerate(_field(data, "annotations", path, 0)):
        iid = int(_field(ann, "image_id", path, row))
        if iid not in out:
            raise BadInput(f"{path}: annotations[{row}]: image_id {iid} not in 'images'")
        out[iid].append(str(_field(ann, "caption", path, row)))
    return out
