"""``xvlm serve``: Prefect + MLflow servers and the deployments on 127.0.0.1.

One served instance for the module: a deployment run completes and shows in both servers' APIs, the
two UIs show it in headless Chromium (screenshots kept as test artefacts), and Ctrl-C stops every
process group. Tests run in file order; the last one stops the services.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flows.services import PID_FILE, _group_alive, free_port

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("XVLM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    home: Path
    prefect_port: int
    mlflow_port: int
    pids: dict[str, int] = field(default_factory=dict)
    flow_run_name: str = ""
    output: list[str] = field(default_factory=list)


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


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback)
        return json.loads(r.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    # As if started by `xvlm serve &` from a script: serve inherits SIGINT ignored (an ignored signal stays
    # ignored across exec), and Ctrl-C must still stop it (test_ctrl_c_stops_every_process).
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        s = Served(subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--home", str(home),
             "--prefect-port", str(pport := free_port()), "--mlflow-port", str(mport := free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env), home, pport, mport)
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        s.output = _wait_for_line(s.proc, "ready", timeout=180)
        s.pids = json.loads((home / PID_FILE).read_text())
        # evaluations=[]: the evaluation stage has its own tests (tests/flows/test_pretrain_eval.py, test_demo);
        # steps=20: what is under test here is the served deployment and the tracking, not the preset's training
        # (make demo runs the full preset: tests/flows/test_demo.py)
        run = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "pretrain/pretrain-demo", "--watch",
             "--watch-timeout", "300", "--param", "evaluations=[]", "--param", "steps=20"],
            capture_output=True, text=True, timeout=360,
            env={**env, "PREFECT_API_URL": f"http://127.0.0.1:{pport}/api"})
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
        runs = _post(f"http://127.0.0.1:{pport}/api/flow_runs/filter",
                     {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 50})
        s.flow_run_name = next(r["name"] for r in runs if r.get("deployment_id"))
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGINT)
            s.proc.communicate(timeout=120)


def test_banner_and_pid_file(served: Served) -> None:
    assert any(f"http://127.0.0.1:{served.prefect_port}" in line for line in served.output)
    assert any(f"http://127.0.0.1:{served.mlflow_port}" in line for line in served.output)
    assert set(served.pids) == {"prefect-server", "mlflow-server", "deployments"}


def test_deployment_run_is_tracked_in_mlflow(served: Served) -> None:
    runs = _post(f"http://127.0.0.1:{served.mlflow_port}/api/2.0/mlflow/runs/search",
                 {"experiment_ids": ["1"]})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    assert {"ingest", "shards"} <= set(by_name) and len(runs) == 3      # ingest, shards, pre-training
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    metrics = {m["key"]: m["value"] for m in by_name["ingest"]["data"]["metrics"]}
    assert metrics["vg.regions.loaded"] > 0
    (train,) = [r for name, r in by_name.items() if name not in ("ingest", "shards")]
    assert any(m["key"] == "loss_itc" for m in train["data"]["metrics"])
    assert {p["key"]: p["value"] for p in train["data"]["params"]}["steps"] == "20"  # the run's parameter arrived


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_both_uis_show_the_run_in_chromium(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run_id = next(r["info"]["run_id"] for r in _post(
        f"http://127.0.0.1:{served.mlflow_port}/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"]})["runs"]
        if r["info"]["run_name"] == "ingest")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{served.prefect_port}/runs", wait_until="domcontentloaded",
                      timeout=60_000)
            page.get_by_text(served.flow_run_name).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "prefect-runs.png"))

            # The MLflow UI keeps polling, so "network idle" may never come: wait for the content.
            page.goto(f"http://127.0.0.1:{served.mlflow_port}/#/experiments/1/runs/{run_id}",
                      wait_until="domcontentloaded", timeout=60_000)
            page.get_by_text("vg.regions.loaded").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-run.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "prefect-runs.png").stat().st_size > 10_000
    assert (ARTIFACTS / "mlflow-run.png").stat().st_size > 10_000


def test_ctrl_c_stops_every_process(served: Served) -> None:
    served.proc.send_signal(signal.SIGINT)
    out, _ = served.proc.communicate(timeout=120)
    assert served.proc.returncode == 0, out
    assert "stopped" in out
    assert not (served.home / PID_FILE).exists()
    for name, pid in served.pids.items():
        assert not _group_alive(pid), f"{name} (process group {pid}) survived Ctrl-C"
