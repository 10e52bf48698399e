"""Corpus recipes as data: ``recipes/<name>.json`` says which lake sources make a corpus and how.

A recipe is declarative (sources, leak lists, text limits, shard size, seed, image mode); code never
branches on a recipe's name. Its hash (:func:`recipe_hash`) covers every field plus the text of the
``sql/samples`` queries, so a change to either gives a new output folder; the build id
(:func:`build_id`) adds the fingerprints of the lake partitions read, so re-ingesting changed data
also gives a new folder instead of silently mixing old shards with new samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xvlm.configtree import build
from xvlm.errors import BadInput, MissingInput

REPO_ROOT = Path(__file__).resolve().parents[3]
RECIPE_DIR = REPO_ROOT / "recipes"
SAMPLES_SQL_DIR = REPO_ROOT / "sql" / "samples"
# Bump when the shard byte layout changes (member names, JSON fields, tar metadata).
FORMAT_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_+.-]*$")


@dataclass(frozen=True)
class Recipe:
    """One corpus: lake sources (order = dedup priority: first wins) and the build's knobs."""

    name: str
    sources: tuple[str, ...]
    # Downstream splits whose images must not be pre-trained on: dataset -> split names.
    leak_splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    include_groups: bool = False
    max_captions_per_image: int = 16
    max_concepts_per_image: int = 256
    # An image whose shorter side is below this many pixels is removed (image_too_small): a 1x1 tracking
    # pixel or a thumbnail placeholder never reaches a shard. Captions are stored whole: the one word cap
    # is the loader's ``data.max_words`` (configs/pretrain, METHOD.md s4), so changing it needs no rebuild.
    min_image_side: int = 32
    shard_size: int = 5000
    seed: int = 42
    # None: original bytes; else re-encode as JPEG with the longer side at most this many pixels.
    resize_max_side: int | None = None
    jpeg_quality: int = 90
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise BadInput(f"recipe name {self.name!r}: use lower-case letters, digits, '_', '-', '+', '.'")
        if not self.sources:
            raise BadInput(f"recipe {self.name!r}: 'sources' is empty")
        if len(set(self.sources)) != len(self.sources):
            raise BadInput(f"recipe {self.name!r}: 'sources' lists a source twice")
        for key in ("max_captions_per_image", "max_concepts_per_image", "min_image_side", "shard_size"):
            if int(getattr(self, key)) < 1:
                raise BadInput(f"recipe {self.name!r}: {key} must be >= 1")
        if self.resize_max_side is not None and self.resize_max_side < 8:
            raise BadInput(f"recipe {self.name!r}: resize_max_side must be >= 8 or null")
        if not 1 <= self.jpeg_quality <= 100:
            raise BadInput(f"recipe {self.name!r}: jpeg_quality must be in 1..100")

    @property
    def flat_leak_splits(self) -> list[str]:
        """``['coco/test', ...]``: the form ``image_outcomes.sql`` binds."""
        return sorted(f"{d}/{s}" for d, splits in self.leak_splits.items() for s in splits)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        d["leak_splits"] = {k: list(v) for k, v in sorted(self.leak_splits.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "recipe") -> Recipe:
        """Strict (``xvlm.configtree``): an unknown field or a bad value is ``BadInput`` naming ``where``."""
        if isinstance(d, dict) and "max_caption_words" in d:
            raise BadInput(f"{where}: 'max_caption_words' is no longer a recipe field: captions are stored whole "
                           "and the loader's data.max_words (the training config) cuts them; remove it")
        return build(cls, d, where)

    def with_(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (tests, benchmarks, a one-off resize run)."""
        return dataclasses.replace(self, **changes)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by name (``recipes/<name>.json``) or by path to a JSON file."""
    p = Path(name_or_path)
    if not p.suffix:
        p = RECIPE_DIR / f"{name_or_path}.json"
    if not p.is_file():
        known = sorted(f.stem for f in RECIPE_DIR.glob("*.json"))
        raise MissingInput(f"{p}: no such recipe; known recipes: {known}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{p}: not valid JSON ({exc})") from exc
    return Recipe.from_dict(doc, where=str(p))


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's fields, the ``sql/samples`` texts and the shard format version."""
    h = hashlib.sha256(_canon({"recipe": recipe.to_dict(), "format": FORMAT_VERSION}))
    for f in sorted(SAMPLES_SQL_DIR.glob("*.sql")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build_id(recipe: Recipe, lake_fingerprints: dict[str, str]) -> str:
    """Identity of one build's output: the recipe hash plus the lake partitions it reads."""
    return hashlib.sha256(_canon({"recipe": recipe_hash(recipe), "lake": lake_fingerprints})).hexdigest()
