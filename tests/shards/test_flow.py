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


def test_flow_on_existing_dask_cluster(prefect_harness, planted: tuple[Path, Path], tmp_path: Path) -> None:
    """``dask_address``: the flow attaches to a scheduler it did not start (what a user's cluster is) and
    its worker process writes the shards: same bytes as the library build, and the cluster outlives it."""
    pytest.importorskip("prefect_dask")
    distributed = pytest.importorskip("distributed")
    from flows.shards import run_shards

    lake, raw = planted
    recipe = tmp_path / "t.json"
    recipe.write_text(json.dumps(TEST_RECIPE.to_dict()))
    ref = Path(build_shards(lake, raw, tmp_path / "ref", TEST_RECIPE)["out"])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        got = run_shards(lake, raw, tmp_path / "remote", recipe=str(recipe), dask_address=address)
        assert got["shards_written_this_run"] == 2 and got["samples_written"] == 5
        assert _tree(Path(got["out"])) == _tree(ref)
        assert "write_shard_task" in cluster.scheduler.task_prefixes  # the shards ran on its worker
        with distributed.Client(address) as client:  # still up: the flow did not close a cluster it did not own
            assert client.submit(sum, [1, 2]).result() == 3
