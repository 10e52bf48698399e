"""``xvlm serve``: Prefect + MLflow servers and the deployments on 127.0.0.1; a deployment run shows in
both; Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.services import PID_FILE, _group_alive, free_port

pytestmark = pytest.mark.slow


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if line:
            seen.append(line.rstrip())
            if text in line:
                return seen
        elif proc.poll() is not None:
            break
    raise AssertionError(f"no {text!r} within {timeout} s; output so far: {seen}")


def test_serve_runs_a_deployment_and_stops_cleanly(tmp_path: Path) -> None:
    home, pport, mport = tmp_path / "home", free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--home", str(home),
         "--prefect-port", str(pport), "--mlflow-port", str(mport)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    pids: dict[str, int] = {}
    try:
        banner = _wait_for_line(proc, "ready", timeout=180)
        assert any(f"127.0.0.1:{pport}" in line for line in banner)
        pids = json.loads((home / PID_FILE).read_text())
        assert set(pids) == {"prefect-server", "mlflow-server", "deployments"}

        client_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{pport}/api"}
        run = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "demo/demo", "--watch",
             "--watch-timeout", "300"],
            capture_output=True, text=True, env=client_env, timeout=360)
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]

        body = json.dumps({"experiment_ids": ["1"]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            runs = json.loads(r.read())["runs"]
        assert [r["info"]["run_name"] for r in runs] == ["ingest"]
        assert runs[0]["info"]["status"] == "FINISHED"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert not (home / PID_FILE).exists()
    for name, pid in pids.items():
        assert not _group_alive(pid), f"{name} (process group {pid}) survived Ctrl-C"
