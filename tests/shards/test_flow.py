"""The Prefect flow ``shards``: thread runner and a local Dask cluster give the same bytes as the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_shards


def _tree(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): p.read_bytes() for p in sorted(build.rglob("*"))
            if p.is_file() and p.name != "audit.json"}


def test_flow_threads_then_dask(prefect_harness, planted: tuple[Path, Path], tmp_path: Path) -> None:
    from flows.shards import run_shards

    lake, raw = planted
    recipe = tmp_path / "t.json"
    recipe.write_text(json.dumps(TEST_RECIPE.to_dict()))
    ref = Path(build_shards(lake, raw, tmp_path / "ref", TEST_RECIPE)["out"])

    r1 = run_shards(lake, raw, tmp_path / "threads", recipe=str(recipe))
    assert r1["shards_written_this_run"] == 2 and r1["samples_written"] == 5
    assert _tree(Path(r1["out"])) == _tree(ref)
    again = run_shards(lake, raw, tmp_path / "threads", recipe=str(recipe))
    assert again["shards_written_this_run"] == 0  # resumable: done shards are skipped

    pytest.importorskip("prefect_dask")
    r2 = run_shards(lake, raw, tmp_path / "dask", recipe=str(recipe), dask=True, n_workers=2)
    assert r2["shards_written_this_run"] == 2
    assert _tree(Path(r2["out"])) == _tree(ref)
