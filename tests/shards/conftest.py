"""Fixtures: the planted hand-made lake (tests/shards/lakefix.py) and a small test recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shards.lakefix import make_planted
from xvlm.data.shards import Recipe

TEST_RECIPE = Recipe(
    name="t", sources=("coco", "vg", "cc3m", "cc12m", "sbu"),
    leak_splits={"coco": ("val", "test"), "flickr30k": ("val", "test")},
    max_captions_per_image=8, max_concepts_per_image=16, shard_size=3, seed=7,
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(lake_root, raw_root)`` of the planted lake; module-scoped, treat as read-only."""
    return make_planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture
def planted_rw(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the planted lake for tests that change it."""
    return make_planted(tmp_path)
