"""A demo shard build (sample corpus -> lake -> shards, ~10 s), shared by the viz tests; treat as read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viz.demo_build import build_demo_shards


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(raw_root, lake_root, build_dir)``."""
    return build_demo_shards(tmp_path_factory.mktemp("viz-demo"))
