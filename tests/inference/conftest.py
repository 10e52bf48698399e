"""A trained demo checkpoint: sample corpus -> lake -> shards -> the ``pretrain-demo`` preset (150 steps of
``xvlm-debug`` at 96 px on CPU; about a minute on a quiet 2-core machine). Session-scoped, read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viz.demo_build import build_demo_shards, train_demo


@pytest.fixture(scope="session")
def demo_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(build_dir, run_dir)``: the shard build and the training run folder (``checkpoints/latest``)."""
    root = tmp_path_factory.mktemp("inference-demo")
    _, _, build = build_demo_shards(root)
    return build, train_demo(build, root / "train")
