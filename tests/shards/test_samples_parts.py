"""``sample_rows`` built in key ranges (xvlm/data/shards/samples.py ``_sample_rows``): ranges of one or
two texts give the same samples, removed rows, dropped texts and plan as one range, and the ranges
are consecutive, disjoint and cover every surviving image."""

from __future__ import annotations

import importlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_samples

samples_mod = importlib.import_module("xvlm.data.shards.samples")


@pytest.mark.parametrize("per_part", [1, 2])
def test_parts_give_the_one_pass_samples(planted: tuple[Path, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, per_part: int) -> None:
    lake, raw = planted
    parts: list[list[tuple[str, str]]] = []
    real = samples_mod.SqlRunner.query

    def spy(self: object, name: str, **params: object) -> list:
        rows = real(self, name, **params)  # type: ignore[arg-type]
        if name == "sample_parts":
            parts.append(rows)
        return rows

    monkeypatch.setattr(samples_mod.SqlRunner, "query", spy)
    one = build_samples(lake, raw, tmp_path / "one", TEST_RECIPE)
    assert len(parts[0]) == 1  # the test corpus is far below the default part size
    monkeypatch.setattr(samples_mod, "_TEXTS_PER_PART", per_part)
    many = build_samples(lake, raw, tmp_path / "many", TEST_RECIPE)
    ranges = parts[1]
    assert len(ranges) > 3
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # in order, disjoint
    keys = set(pq.read_table(tmp_path / "many" / "samples.parquet").column("image_key").to_pylist())
    assert all(any(lo <= k <= hi for lo, hi in ranges) for k in keys)
    assert one["stats"] == many["stats"] and one["shard_sizes"] == many["shard_sizes"]
    for f in ("samples.parquet", "removed.parquet", "dropped_texts.parquet"):
        assert pq.read_table(tmp_path / "one" / f).equals(pq.read_table(tmp_path / "many" / f)), f
