"""Image-text retrieval splits from the real formats (datasets-and-tools.md §1.2).

Two file families describe the same Karpathy splits:
- Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``: ``{"images": [{filepath?, filename, split,
  sentences: [{raw, ...}], cocoid?}], "dataset": ...}``; ``restval`` is folded into ``train`` (as everyone does).
- ALBEF / X-VLM fine-tuning JSON: train = one record per caption ``{image, caption: str, image_id}``;
  val / test = one record per image ``{image, caption: [str, ...]}``.

Both become a ``RetrievalSplit``: distinct images, all texts, and each text's image index. Training uses
the image index as the ITC soft-target / ITM-exclusion id (every caption of an image is a positive).
``verify_with_lake`` checks the images' split membership against the lake's ``splits`` table, the list
pre-training uses to drop downstream val/test images (leak control).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from xvlm.data.downstream.common import MAX_WORDS, DownstreamFormatError, clean_text, load_json
from xvlm.errors import BadInput, MissingInput

KARPATHY_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RetrievalSplit:
    """One split: ``images[i]`` is a path relative to ``image_root``; ``texts[t]`` describes ``txt2img[t]``."""

    name: str
    image_root: Path
    images: list[str]
    texts: list[str]
    txt2img: list[int]
    image_keys: list[str] = field(default_factory=list)  # lake image_key per image ('' when unknown)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.txt2img):
            raise BadInput(f"{self.name}: {len(self.texts)} texts but {len(self.txt2img)} txt2img entries")
        if any(not 0 <= i < len(self.images) for i in self.txt2img):
            raise BadInput(f"{self.name}: txt2img points outside the {len(self.images)} images")

    @property
    def img2txt(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.images]
        for t, i in enumerate(self.txt2img):
            out[i].append(t)
        return out

    def image_path(self, i: int) -> Path:
        return self.image_root / self.images[i]

    def subset(self, n_images: int) -> RetrievalSplit:
        """The first ``n_images`` images with all their texts (for quick evaluations)."""
        keep = [t for t, i in enumerate(self.txt2img) if i < n_images]
        return RetrievalSplit(self.name, self.image_root, self.images[:n_images], [self.texts[t] for t in keep],
                              [self.txt2img[t] for t in keep], self.image_keys[:n_images])


def image_key_from_path(path: str) -> str:
    """The lake's image key for a COCO or Flickr30K file name ('' when the name is neither).

    COCO 2014 / 2017 names carry the 12-digit COCO id (``COCO_val2014_000000391895.jpg``, ``000000391895.jpg``);
    Flickr30K names are the numeric Flickr id (``1007129816.jpg``). Matches ``sql/lake/karpathy_splits.sql``.
    """
    name = path.rsplit("/", 1)[-1]
    if m := re.fullmatch(r"(?:COCO_[a-z]+\d{4}_)?(\d{12})\.jpg", name):
        return f"coco_{int(m.group(1))}"
    if m := re.fullmatch(r"(\d+)\.jpg", name):
        return f"flickr30k_{int(m.group(1))}"
    return ""


# --------------------------------------------------------------------------------------------------------
# ALBEF / X-VLM fine-tuning JSON
# --------------------------------------------------------------------------------------------------------


def read_albef(path: str | Path, image_root: str | Path, name: str | None = None,
               max_words: int = MAX_WORDS) -> RetrievalSplit:
    """Read ``coco_karpathy_{train,val,test}.json`` / ``flickr30k_{train,val,test}.json``.

    Train records (caption is a string) are grouped by ``image_id``; one id must always name one image
    path. Eval records (caption is a list) are one image each. A file mixing the two is an error.
    """
    path = Path(path)
    doc = load_json(path)
    if not isinstance(doc, list) or not doc:
        raise DownstreamFormatError(f"{path}: expected a non-empty JSON array of records")
    images: list[str] = []
    texts: list[str] = []
    txt2img: list[int] = []
    index_of: dict[Any, int] = {}
    kind: str | None = None
    for r, rec in enumerate(doc):
        where = f"{path}: record {r}"
        if not isinstance(rec, dict):
            raise DownstreamFormatError(f"{where}: expected an object, got {type(rec).__name__}")
        image = rec.get("image")
        if not isinstance(image, str) or not image:
            raise DownstreamFormatError(f"{where}: field 'image' missing or not a string")
        caps = rec.get("caption")
        this = "train" if isinstance(caps, str) else "eval" if isinstance(caps, list) else None
        if this is None:
            raise DownstreamFormatError(f"{where}: field 'caption' must be a string (train) or a list (val/test)")
        if kind is not None and this != kind:
            raise DownstreamFormatError(f"{where}: field 'caption' is a {this} record in a {kind} file")
        kind = this
        if this == "train":
            if "image_id" not in rec or not isinstance(rec["image_id"], str | int):
                raise DownstreamFormatError(f"{where}: field 'image_id' missing or not a string/int")
            iid = rec["image_id"]
            if iid not in index_of:
                index_of[iid] = len(images)
                images.append(image)
            elif images[index_of[iid]] != image:
                raise DownstreamFormatError(f"{where}: image_id {iid!r} names both "
                                            f"{images[index_of[iid]]!r} and {image!r}")
            texts.append(clean_text(caps, f"{where}: field 'caption'", max_words))
            txt2img.append(index_of[iid])
        else:
            if not caps:
                raise DownstreamFormatError(f"{where}: field 'caption' is an empty list")
            i = len(images)
            images.append(image)
            for c, cap in enumerate(caps):
                texts.append(clean_text(cap, f"{where}: field 'caption[{c}]'", max_words))
                txt2img.append(i)
    return RetrievalSplit(name or path.stem, Path(image_root), images, texts, txt2img,
                          [image_key_from_path(p) for p in images])


# --------------------------------------------------------------------------------------------------------
# Karpathy dataset_*.json
# --------------------------------------------------------------------------------------------------------


def read_karpathy(path: str | Path, split: str, image_root: str | Path,
                  locate: Callable[[dict[str, Any]], str] | None = None,
                  max_words: int = MAX_WORDS) -> RetrievalSplit:
    """One split of Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``.

    Args:
        split: ``train`` (includes ``restval``), ``val`` or ``test``.
        locate: image record -> path relative to ``image_root``. Default: ``{filepath}/{filename}`` for COCO
            (2014 layout), ``flickr30k-images/{filename}`` for Flickr30K. See ``coco2017_locator``.
    """
    if split not in KARPATHY_SPLITS:
        raise BadInput(f"split must be one of {KARPATHY_SPLITS}, got {split!r}")
    path = Path(path)
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DownstreamFormatError(f"{path}: expected an object with an 'images' array")
    dataset = doc.get("dataset")
    if locate is None:
        locate = _locate_flickr if dataset == "flickr30k" else _locate_coco2014
    wanted = {"train", "restval"} if split == "train" else {split}
    images: list[str] = []
    keys: list[str] = []
    texts: list[str] = []
    txt2img: list[int] = []
    for r, rec in enumerate(doc["images"]):
        where = f"{path}: images[{r}]"
        if not isinstance(rec, dict):
            raise DownstreamFormatError(f"{where}: expected an object")
        s = rec.get("split")
        if s not in ("train", "restval", "val", "test"):
            raise DownstreamFormatError(f"{where}: field 'split' is {s!r}, not train/restval/val/test")
        if s not in wanted:
            continue
        if not isinstance(rec.get("filename"), str):
            raise DownstreamFormatError(f"{where}: field 'filename' missing or not a string")
        sents = rec.get("sentences")
        if not isinstance(sents, list) or not sents:
            raise DownstreamFormatError(f"{where}: field 'sentences' missing or empty")
        i = len(images)
        images.append(locate(rec))
        keys.append(f"coco_{int(rec['cocoid'])}" if "cocoid" in rec else image_key_from_path(rec["filename"]))
        for k, sent in enumerate(sents):
            raw = sent.get("raw") if isinstance(sent, dict) else None
            texts.append(clean_text(raw, f"{where}: field 'sentences[{k}].raw'", max_words))
            txt2img.append(i)
    if not images:
        raise DownstreamFormatError(f"{path}: no images in split {split!r}")
    return RetrievalSplit(f"{dataset}_{split}", Path(image_root), images, texts, txt2img, keys)


def _locate_coco2014(rec: dict[str, Any]) -> str:
    return f"{rec.get('filepath', '')}/{rec['filename']}".lstrip("/")


def _locate_flickr(rec: dict[str, Any]) -> str:
    return f"flickr30k-images/{rec['filename']}"


def coco2017_locator(image_root: str | Path) -> Callable[[dict[str, Any]], str]:
    """Locate Karpathy COCO images in a 2017 layout (``train2017/``, ``val2017/``, files ``{cocoid:012d}.jpg``).

    2014 and 2017 hold the same images under the same ids; Karpathy's split does not say which 2017 folder
    an image is in, so the folder is looked up on disk.
    """
    root = Path(image_root)

    def locate(rec: dict[str, Any]) -> str:
        name = f"{int(rec['cocoid']):012d}.jpg"
        for folder in ("train2017", "val2017"):
            if (root / folder / name).is_file():
                return f"{folder}/{name}"
        raise MissingInput(f"{root}: COCO image {name} (Karpathy {rec.get('filename')}) in neither "
                                "train2017/ nor val2017/")

    return locate


# --------------------------------------------------------------------------------------------------------
# Lake cross-check
# --------------------------------------------------------------------------------------------------------


def lake_split_membership(lake_root: str | Path, dataset: str) -> dict[str, str]:
    """``image_key -> split`` for one dataset from the lake's ``splits`` table (restval reported as train)."""
    files = sorted(Path(lake_root).glob("splits/source=*/*.parquet"))
    if not files:
        raise MissingInput(f"{lake_root}: no splits table (splits/source=*/*.parquet); run the ingest first")
    out: dict[str, str] = {}
    for f in files:
        t = pq.read_table(f, columns=["dataset", "split", "image_key"], filters=[("dataset", "=", dataset)])
        for key, s in zip(t.column("image_key").to_pylist(), t.column("split").to_pylist(), strict=True):
            out[key] = "train" if s == "restval" else s
    return out


def verify_with_lake(split: RetrievalSplit, split_name: str, lake_root: str | Path, dataset: str) -> None:
    """Raise unless every image of ``split`` is in the lake's ``splits`` table under ``split_name``.

    Why: the lake's split table drives the removal of downstream val/test images from pre-training; an
    evaluation on images the lake files under another split would be an evaluation on leaked images.
    """
    member = lake_split_membership(lake_root, dataset)
    bad: list[str] = []
    for img, key in zip(split.images, split.image_keys or [""] * len(split.images), strict=True):
        got = member.get(key)
        if got != split_name:
            bad.append(f"{img} (key {key or '?'}: lake says {got or 'absent'})")
    if bad:
        raise DownstreamFormatError(f"{split.name}: {len(bad)} image(s) not in the lake's {dataset} "
                                    f"{split_name!r} split, e.g. {bad[:3]}")


def merge_splits(name: str, splits: Sequence[RetrievalSplit]) -> RetrievalSplit:
    """Concatenate splits that share an image root (e.g. COCO train + restval files)."""
    if not splits:
        raise BadInput("merge_splits: nothing to merge")
    root = splits[0].image_root
    images: list[str] = []
    texts: list[str] = []
    txt2img: list[int] = []
    keys: list[str] = []
    for s in splits:
        if s.image_root != root:
            raise BadInput(f"merge_splits: image roots differ ({root} vs {s.image_root})")
        off = len(images)
        images += s.images
        keys += s.image_keys or [""] * len(s.images)
        texts += s.texts
        txt2img += [off + i for i in s.txt2img]
    return RetrievalSplit(name, root, images, texts, txt2img, keys)
