"""NLVR2 readers: the official JSON-lines files and the reference's (ALBEF-style) JSON list.

- Official (``nlvr2/data/{train,dev,test1}.json``): one object per line with ``identifier``
  (``{split}-{set}-{pair}-{sentence}``), ``sentence``, ``label`` ("True"/"False") and, for train, the
  image ``directory``; images are ``images/{split}[/{directory}]/{split}-{set}-{pair}-img{0,1}.png``.
- Reference: a JSON list of ``{"images": [left, right], "sentence", "label"}`` with image paths relative
  to the image root (``dataset/nlvr_dataset.py``).
The format is detected from the first non-blank character (``[`` = list).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xvlm.errors import BadInput, MissingInput


@dataclass(frozen=True)
class NLVR2Example:
    identifier: str
    images: tuple[Path, Path]  # (left, right)
    sentence: str
    label: int  # 1 = True, 0 = False


def _label(value: object, path: Path, row: int) -> int:
    if value in ("True", True):
        return 1
    if value in ("False", False):
        return 0
    raise BadInput(f"{path}: row {row}: field 'label' must be 'True' or 'False', got {value!r}")


def _need(rec: object, key: str, path: Path, row: int) -> object:
    if not isinstance(rec, dict) or key not in rec:
        raise BadInput(f"{path}: row {row}: missing field {key!r}")
    return rec[key]


def read_nlvr2(path: str | Path, image_root: str | Path, check_images: bool = True) -> list[NLVR2Example]:
    """Read either NLVR2 layout; ``image_root`` is ``nlvr2/images`` (official) or the reference's root."""
    path, root = Path(path), Path(image_root)
    text = path.read_text()
    out: list[NLVR2Example] = []
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}: invalid JSON: {e}") from e
        for row, rec in enumerate(data):
            imgs = _need(rec, "images", path, row)
            if not (isinstance(imgs, list) and len(imgs) == 2):
                raise BadInput(f"{path}: row {row}: field 'images' must list exactly two images")
            out.append(NLVR2Example(str(rec.get("identifier", row)), (root / imgs[0], root / imgs[1]),
                                    str(_need(rec, "sentence", path, row)), _label(rec.get("label"), path, row)))
    else:
        for row, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(f"{path}: line {row + 1}: invalid JSON: {e}") from e
            ident = str(_need(rec, "identifier", path, row))
            parts = ident.split("-")
            if len(parts) != 4:
                raise BadInput(f"{path}: row {row}: identifier {ident!r} is not split-set-pair-sentence")
            stem, split = "-".join(parts[:3]), parts[0]
            folder = root / split / str(rec["directory"]) if "directory" in rec else root / split
            out.append(NLVR2Example(ident, (folder / f"{stem}-img0.png", folder / f"{stem}-img1.png"),
                                    str(_need(rec, "sentence", path, row)),
                                    _label(_need(rec, "label", path, row), path, row)))
    if not out:
        raise BadInput(f"{path}: no NLVR2 examples")
    if check_images:
        for ex in out:
            for p in ex.images:
                if not p.is_file():
                    raise MissingInput(f"{path}: example {ex.identifier}: image {p} missing")
    return out
