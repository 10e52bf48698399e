"""The whole demo's checkpoint (tests/conftest.py ``demo_full``: the ``pretrain-demo`` preset trained by the
flow on the sample corpus, 600 steps), for the slow test of what it learned. Read-only."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_learned(demo_full: tuple[Path, str]) -> tuple[Path, Path]:
    """``(build_dir, run_dir)``: the whole demo's shard build and its training run folder (``checkpoints/latest``)."""
    out, _ = demo_full
    return next((out / "shards").glob("demo-*")), out / "train"
