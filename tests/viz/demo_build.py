"""The demo data path built with the library (no Prefect): sample corpus -> lake -> shards [-> training].

Shared by ``tests/viz`` (a shard build to draw) and ``tests/inference`` (a trained demo checkpoint). The
training follows ``configs/pretrain/demo.json`` (the ``pretrain-demo`` preset) exactly, with the shard
glob and output folder the flow would fill in.
"""

from __future__ import annotations

import json
from pathlib import Path

from xvlm.data.lake.ingest import ingest
from xvlm.data.sample_corpus import write_sample_corpus
from xvlm.data.shards import build_shards

REPO = Path(__file__).resolve().parents[2]


def build_demo_shards(root: Path) -> tuple[Path, Path, Path]:
    """``(raw_root, lake_root, build_dir)`` of the demo recipe over the sample corpus, under ``root``."""
    raw = write_sample_corpus(root / "raw")
    lake = root / "lake"
    ingest(raw, lake)
    totals = build_shards(lake, raw, root / "shards", "demo", workers=2)
    return raw, lake, Path(totals["out"])


def train_demo(build_dir: Path, out_dir: Path) -> Path:
    """Train the ``pretrain-demo`` preset on ``build_dir``'s shards; returns the run folder."""
    from xvlm.train import PretrainConfig, train

    preset = json.loads((REPO / "configs" / "pretrain" / "demo.json").read_text())
    preset.pop("_comment", None)
    preset.pop("recipe")
    preset.pop("downstream", None)  # the evaluation stage's settings, not a PretrainConfig field
    preset["out_dir"] = str(out_dir)
    preset["data"]["shards"] = [str(build_dir / "shards" / "*.tar")]
    train(PretrainConfig.from_dict(preset))
    return out_dir
