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


def test_ingest_flow_with_a_broken_file_ingests_the_rest_and_ends_failed(tmp_path: Path) -> None:
    """docs/lake.md: an unusable file fails the flow run (state Failed, IngestErrors naming the file),
    after every other file and source was ingested and lake.duckdb written."""
    from flows.ingest import IngestErrors, ingest
    from tests.data import lake_faults as lf

    raw = lf.write_base(tmp_path / "raw")
    (raw / lf.VG["objects"]).write_bytes(b"")
    out = tmp_path / "lake"
    state = ingest(str(raw), str(out), sources=["vg", "objects365"], config={"check_images": False},
                   return_state=True)
    assert state.is_failed()
    with pytest.raises(IngestErrors, match=r"vg: vg/objects\.json: empty file \(0 bytes\)"):
        state.result()
    stats = lake_stats(out)
    assert set(stats) == {"vg", "objects365"} and (out / "lake.duckdb").is_file()
    assert stats["vg"]["errors"] == [{"file": "vg/objects.json", "error": "empty file (0 bytes)"}]
    assert stats["vg"]["entities"]["regions"]["loaded"] == 4
