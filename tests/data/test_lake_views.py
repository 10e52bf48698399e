"""``lake.duckdb`` is readable by the ``duckdb`` shell the project ships (PyPI duckdb-cli 1.5.x reads
storage versions 64-68; the Python duckdb 2.x writes 69 unless told otherwise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xvlm.data.lake import IngestConfig, ingest_lake, lake_sql
from xvlm.data.sample_corpus import write_sample_corpus

DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def vg_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    raw = write_sample_corpus(tmp_path_factory.mktemp("views") / "raw", seed=0)
    out = raw.parent / "lake"
    return out, ingest_lake(IngestConfig(raw_root=raw, out=out), sources=["vg"])


@pytest.mark.skipif(not DUCKDB_SHELL.is_file(), reason=f"no duckdb shell at {DUCKDB_SHELL} (PyPI duckdb-cli)")
def test_shipped_duckdb_shell_reads_the_lake(vg_lake: tuple[Path, dict]) -> None:
    out, stats = vg_lake
    res = subprocess.run([str(DUCKDB_SHELL), "-readonly", "-csv", "-noheader", str(out / "lake.duckdb"),
                          "select source, count(*) from regions group by all"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [f"vg,{stats['vg']['entities']['regions']['loaded']}"]
    assert stats["vg"]["entities"]["regions"]["loaded"] > 0


def test_lake_db_is_written_in_the_compatible_storage_version(vg_lake: tuple[Path, dict]) -> None:
    out, _ = vg_lake
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("ATTACH $p AS l (READ_ONLY)", {"p": str(out / "lake.duckdb")})
        got = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'l'"
                          ).fetchone()
    finally:
        con.close()
    assert got is not None and got[0] is not None and got[0].startswith("v1.4"), got
    assert lake_sql(out, "select count(*) from images")[1][0][0] > 0
