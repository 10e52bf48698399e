"""The trained demo checkpoint: the session's ``make demo`` run (tests/conftest.py ``demo_run``), i.e. the
``pretrain-demo`` preset trained by the flow on the sample corpus. Read-only."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_trained(demo_run: tuple[Path, str]) -> tuple[Path, Path]:
    """``(build_dir, run_dir)``: the demo's shard build and its training run folder (``checkpoints/latest``)."""
    out, _ = demo_run
    return next((out / "shards").glob("demo-*")), out / "train"
