"""The trained demo checkpoints: the session's demo runs (tests/conftest.py), i.e. the ``pretrain-demo``
preset trained by the flow on the sample corpus: ``demo_trained`` the smoke run (40 steps), ``demo_learned``
the whole demo (600 steps, slow tests only). Read-only."""

from __future__ import annotations

from pathlib import Path

import pytest


def _outputs(out: Path) -> tuple[Path, Path]:
    return next((out / "shards").glob("demo-*")), out / "train"


@pytest.fixture(scope="session")
def demo_trained(demo_run: tuple[Path, str]) -> tuple[Path, Path]:
    """``(build_dir, run_dir)`` of the smoke demo: its shard build and its training run folder
    (``checkpoints/latest``)."""
    return _outputs(demo_run[0])


@pytest.fixture(scope="session")
def demo_learned(demo_full: tuple[Path, str]) -> tuple[Path, Path]:
    """``(build_dir, run_dir)`` of the whole demo (600 steps)."""
    return _outputs(demo_full[0])
