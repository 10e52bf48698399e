"""The demo data path built with the library (no Prefect): sample corpus -> lake -> shards, for ``tests/viz``
(a shard build to draw). A trained demo checkpoint comes from the session's ``make demo`` run instead
(``demo_run`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from xvlm.data.lake.ingest import ingest
from xvlm.data.sample_corpus import write_sample_corpus
from xvlm.data.shards import build_shards


def build_demo_shards(root: Path) -> tuple[Path, Path, Path]:
    """``(raw_root, lake_root, build_dir)`` of the demo recipe over the sample corpus, under ``root``."""
    raw = write_sample_corpus(root / "raw")
    lake = root / "lake"
    ingest(raw, lake)
    totals = build_shards(lake, raw, root / "shards", "demo", workers=2)
    return raw, lake, Path(totals["out"])

