"""The samples step's image probe in batches (xvlm/data/shards/samples.py ``_probe``): batches of two
images give the same samples, removed rows, dropped texts and plan as one batch, and the probe's
temporary file is gone afterwards."""

from __future__ import annotations

import importlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_samples

samples_mod = importlib.import_module("xvlm.data.shards.samples")


def test_probe_batches_give_the_same_samples(planted: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    lake, raw = planted
    calls: list[int] = []
    real = samples_mod.probe_images

    def spy(root: Path, rows: object, workers: int = 4, min_side: int = 1) -> object:
        rows = list(rows)  # type: ignore[call-overload]
        calls.append(len(rows))
        return real(root, rows, workers=workers, min_side=min_side)

    monkeypatch.setattr(samples_mod, "probe_images", spy)
    one = build_samples(lake, raw, tmp_path / "one", TEST_RECIPE)
    assert len(calls) == 1 and calls[0] > 4
    n = calls.pop()
    monkeypatch.setattr(samples_mod, "_PROBE_BATCH", 2)
    many = build_samples(lake, raw, tmp_path / "many", TEST_RECIPE)
    assert calls == [2] * (n // 2) + ([n % 2] if n % 2 else [])
    assert one["stats"] == many["stats"] and one["shard_sizes"] == many["shard_sizes"]
    for f in ("samples.parquet", "removed.parquet", "dropped_texts.parquet"):
        assert pq.read_table(tmp_path / "one" / f).equals(pq.read_table(tmp_path / "many" / f)), f
        assert not (tmp_path / "many" / samples_mod.PROBE_FILE).exists()
