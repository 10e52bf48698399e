"""Out of DuckDB memory in ingest: the source's stats say FAILED with one ``ResourceLimit`` line naming
the stage, the limit and the spill folder; the source writes nothing, the other sources still run, and
the CLI prints the stats and the error and exits 2 (never DuckDB's traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from xvlm.data.lake import IngestConfig, ingest_errors, ingest_lake
from xvlm.data.lake.ingest import ALL_FILES, ingest_source
from xvlm.data.sample_corpus import write_sample_corpus
from xvlm.errors import ResourceLimit


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("mem") / "raw", seed=0)


def test_ingest_source_out_of_memory_is_one_line(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    with pytest.raises(ResourceLimit) as e:
        ingest_source(IngestConfig(raw_root=raw, out=out, memory_limit="1KB"), "coco", force=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("ingest of source 'coco': DuckDB ran out of memory at memory_limit 1KB")
    assert str(out / "_tmp") in msg and "raise memory_limit" in msg
    assert not list(out.glob("*/source=coco/*.parquet"))  # nothing of the source written


def test_out_of_memory_fails_the_source_not_the_ingest(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    stats = ingest_lake(IngestConfig(raw_root=raw, out=out, memory_limit="1KB"), ["coco", "sbu"])
    assert set(stats) == {"coco", "sbu"}  # the second source ran after the first failed
    for s in ("coco", "sbu"):
        assert stats[s]["failed"] and stats[s]["entities"] == {}
        [err] = stats[s]["errors"]
        assert err["file"] == ALL_FILES and err["error"].startswith(f"ingest of source {s!r}: DuckDB ran out")
    assert len(ingest_errors(stats)) == 2
    assert not list(out.glob("*/source=*/*.parquet"))


def test_cli_out_of_memory_prints_stats_and_one_line_per_source(raw: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ingest.json"
    cfg.write_text(json.dumps({"memory_limit": "1KB"}))
    res = CliRunner().invoke(app, ["ingest", str(raw), str(tmp_path / "lake"), "-s", "coco", "-s", "cc3m",
                                   "--config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 3, res.output  # one per source + the summary line
    assert err[0].startswith(f"error: coco: {ALL_FILES}: ingest of source 'coco': DuckDB ran out of memory")
    assert err[1].startswith(f"error: cc3m: {ALL_FILES}: ingest of source 'cc3m': DuckDB ran out of memory")
    assert "coco (FAILED: nothing written)" in res.output and "cc3m (FAILED: nothing written)" in res.output
