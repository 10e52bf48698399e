"""``make demo`` end to end: the DAG runs on the sample corpus and its outputs are where it says."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_where_outputs_are(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    assert "Demo finished" in stdout
    for line in ("lake.duckdb", "mlflow ui", "prefect server start"):
        assert line in stdout
    assert (out / "raw" / "QUIRKS.json").is_file()
    assert (out / "lake" / "lake.duckdb").is_file()
    assert (out / ".prefect").is_dir()           # Prefect's local state stayed inside the output


def test_demo_logged_the_ingest_run_to_mlflow(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    con = sqlite3.connect(out / "mlflow.db")
    try:
        runs = con.execute("select r.name, r.status from runs r join experiments e "
                           "on r.experiment_id = e.experiment_id where e.name = 'xvlm-demo'").fetchall()
        loaded = con.execute("select value from latest_metrics where key = 'vg.regions.loaded'").fetchall()
    finally:
        con.close()
    assert ("ingest", "FINISHED") in runs
    assert loaded and loaded[0][0] > 0
