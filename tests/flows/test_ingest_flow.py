"""The Prefect ``ingest`` flow: runs every source, returns and logs the stats; a rerun with the same
inputs is served from the cache / manifest and rewrites nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from xvlm.data.lake import lake_stats
from xvlm.data.sample_corpus import write_sample_corpus

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_ingest_flow_runs_and_reruns_without_writing(tmp_path: Path) -> None:
    from flows.ingest import ingest

    raw = write_sample_corpus(tmp_path / "raw", seed=0)
    out = tmp_path / "lake"
    first = ingest(str(raw), str(out))
    assert Path(first["lake_db"]).is_file()
    assert set(first["stats"]) == set(lake_stats(out))
    vg = first["stats"]["vg"]["entities"]["regions"]
    assert vg["rows_in"] == vg["loaded"] + sum(vg["quarantined"].values()) and vg["loaded"] > 0
    assert not any(s["skipped"] for s in first["stats"].values())
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    second = ingest(str(raw), str(out))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == mtimes
    for source, st in second["stats"].items():
        assert st["entities"] == first["stats"][source]["entities"]
