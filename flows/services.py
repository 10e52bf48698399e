"""Local services: Prefect server, MLflow server and the deployments' runner, on 127.0.0.1.

``xvlm serve`` (and ``make serve``) is the local shape of ``docker/compose.yaml``: a Prefect API
and UI over SQLite, an MLflow tracking server over SQLite with artifacts in a folder, and one
process serving the project's deployments (``flows/deployments.py``). Every child runs in its own
process group and is listed in ``HOME/serve.pids``; stopping (Ctrl-C, SIGTERM, or
``xvlm serve --stop``) ends the runner first, then the servers (a runner whose API is already gone
can hang), and kills whatever is left after a grace period, so no orphan survives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xvlm.envdefaults import OFFLINE_DEFAULTS
from xvlm.fsio import write_json

HOST = "127.0.0.1"
PID_FILE = "serve.pids"


@dataclass
class ServiceSpec:
    """One child process: how to start it and the URL that says it is up."""

    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Services:
    """Where the services of one ``home`` listen; ``env()`` is what a client needs to use them."""

    home: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000

    @property
    def prefect_api(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    @property
    def prefect_ui(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def mlflow_ui(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        return {
            **OFFLINE_DEFAULTS,
            "PREFECT_HOME": str(self.home / ".prefect"),
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            "MLFLOW_TRACKING_URI": self.mlflow_ui,
            "XVLM_SERVE_HOME": str(self.home),
        }

    def specs(self) -> list[ServiceSpec]:
        bin_dir = Path(sys.executable).parent
        server_env = {k: v for k, v in self.env().items() if k != "PREFECT_API_URL"}
        server_env["PREFECT_SERVER_UI_API_URL"] = self.prefect_api  # the UI's own calls (default: port 4200)
        return [
            ServiceSpec(
                "prefect-server",
                [str(bin_dir / "prefect"), "server", "start", "--host", HOST, "--port", str(self.prefect_port)],
                f"{self.prefect_api}/health", server_env),
            ServiceSpec(
                "mlflow-server",
                [str(bin_dir / "mlflow"), "server", "--host", HOST, "--port", str(self.mlflow_port),
                 "--workers", "1", "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
                 "--artifacts-destination", str(self.home / "mlartifacts")],
                f"{self.mlflow_ui}/health", server_env),
            # Up once the first deployment is registered with the API.
            ServiceSpec("deployments", [sys.executable, "-m", "flows.deployments"],
                        f"{self.prefect_api}/deployments/name/pretrain/pretrain-demo", self.env()),
        ]


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now (for tests that run beside other servers)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process serving it exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310
            if r.status == 200:  # (a loopback URL we built ourselves)
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f} s")


def _write_pids(home: Path, pids: dict[str, int]) -> None:
    write_json(home / PID_FILE, pids, indent=1, sort_keys=False)


def stop_pids(home: Path, grace: float = 15.0) -> list[int]:
    """Stop every process group listed in ``home/serve.pids`` (reverse start order); returns the pids."""
    pid_file = home / PID_FILE
    if not pid_file.is_file():
        return []
    pids = list(json.loads(pid_file.read_text()).values())
    for pid in reversed(pids):
        _stop_group(pid, grace)
    pid_file.unlink(missing_ok=True)
    return pids


def _stop_group(pid: int, grace: float) -> None:
    """SIGTERM the process group led by ``pid``, wait, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg; look for a live member.
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (proc / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


@contextlib.contextmanager
def running(services: Services, timeout: float = 120.0, log_dir: Path | None = None) -> Iterator[Services]:
    """Start every service, wait until each is healthy, yield, and always stop them all."""
    home = services.home
    home.mkdir(parents=True, exist_ok=True)
    log_dir = log_dir or home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if (home / PID_FILE).is_file():
        stop_pids(home)  # a previous serve that died without cleaning up
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for spec in services.specs():
            log = open(log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 (kept open for the child)
            procs[spec.name] = subprocess.Popen(
                spec.argv, env={**os.environ, **spec.env}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=Path(__file__).resolve().parents[1])
            log.close()
            _write_pids(home, {name: p.pid for name, p in procs.items()})
            if spec.health_url:
                _wait_healthy(spec.health_url, procs[spec.name], timeout)
        yield services
    finally:
        # A second Ctrl-C (or a supervisor forwarding the signal again) must not cut the clean-up
        # short and leave servers behind: ignore both signals until every group is gone.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for proc in reversed(list(procs.values())):
                _stop_group(proc.pid, grace=15.0)
            (home / PID_FILE).unlink(missing_ok=True)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def serve_forever(services: Services) -> None:
    """``xvlm serve``: start, print the URLs, block until Ctrl-C or SIGTERM, stop cleanly."""
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    # Started in the background by a shell without job control (``cmd &`` in a script, ``nohup``), a process
    # inherits SIGINT ignored and Python installs no KeyboardInterrupt handler: Ctrl-C (or a supervisor's
    # SIGINT) would then leave every server running. Ctrl-C stops serve however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with running(services):
        print(f"Prefect UI   {services.prefect_ui}", flush=True)
        print(f"MLflow UI    {services.mlflow_ui}", flush=True)
        print(f"Use them:    export PREFECT_API_URL={services.prefect_api} "
              f"MLFLOW_TRACKING_URI={services.mlflow_ui}", flush=True)
        print("Run:         .venv/bin/prefect deployment run 'pretrain/pretrain-demo' --watch", flush=True)
        print(f"Logs:        {services.home / 'logs'}   (Ctrl-C stops everything)", flush=True)
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    print("stopped", flush=True)
