"""Shared test set-up: offline, telemetry off, one-thread and negative-sampler fixtures, and one ``make demo``
run per session."""

from __future__ import annotations

import os

# Must be set before prefect / mlflow / transformers are imported anywhere.
from xvlm.envdefaults import apply_offline_defaults  # noqa: E402

apply_offline_defaults(extra={"PREFECT_LOGGING_LEVEL": "WARNING"})

import subprocess  # noqa: E402  (the environment above comes first)
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for the learning tests: their numbers were measured single-threaded
    (reduction order changes the run), and on the 2 shared cores one thread is also the faster."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def spy_negatives(monkeypatch: pytest.MonkeyPatch):
    """``install(module)`` wraps ``module.sample_hard_negatives`` and returns the list that records the
    ``(sim, same)`` of every call: what the ITM sampler was handed, for the negative-sampling tests."""
    import torch

    from xvlm.models.losses import sample_hard_negatives

    def install(module: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def spy(sim: torch.Tensor, same: torch.Tensor, generator: torch.Generator | None = None):
            seen.append((sim.clone(), same.clone()))
            return sample_hard_negatives(sim, same, generator)

        monkeypatch.setattr(module, "sample_hard_negatives", spy)
        return seen

    return install


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API server (SQLite) per test process, shared by every test that runs flows: a
    server per module cost ~20 s of start-up each. Start-up may take up to
    ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (120 s, ``xvlm.envdefaults``): two xdist workers on
    2 busy cores missed the harness' own 30 s."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


DEMO_DIR_ENV = "XVLM_TEST_DEMO_DIR"


def pytest_configure(config: pytest.Config) -> None:
    """One folder for the session's ``make demo`` run, shared by the xdist workers (they inherit it)."""
    if DEMO_DIR_ENV not in os.environ:
        import tempfile

        os.environ[DEMO_DIR_ENV] = tempfile.mkdtemp(prefix="xvlm-test-demo-")


def _start_demo(out: Path) -> None:
    """``flows.cli demo --out out/demo`` in the background; ``out/rc`` is written when it ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    cmd = (f"{sys.executable} -m flows.cli demo --out {out / 'demo'} > {out / 'stdout'} 2> {out / 'stderr'}; "
           f"echo $? > {out / 'rc.tmp'} && mv {out / 'rc.tmp'} {out / 'rc'}")
    subprocess.Popen(["bash", "-c", cmd], env=env, start_new_session=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the ``make demo`` run go last, and the demo starts now, in the background (one worker
    starts it: gw0, or the only process without xdist): it is the suite's longest step (minutes) and runs
    beside the other tests instead of before them."""
    uses_demo = [it for it in items if "demo_run" in getattr(it, "fixturenames", ())]
    items.sort(key=lambda it: "demo_run" in getattr(it, "fixturenames", ()))  # stable: demo tests last
    out = Path(os.environ[DEMO_DIR_ENV])
    if uses_demo and os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0" and not (out / "started").exists():
        (out / "started").touch()
        _start_demo(out)


@pytest.fixture(scope="session")
def demo_run() -> tuple[Path, str]:
    """``(out_dir, stdout)`` of ``make demo`` (``flows.cli demo``: ingest -> shards -> the ``pretrain-demo``
    preset -> evaluation; a few minutes), run once per session and shared by the xdist workers:
    tests/flows/test_demo.py checks its outputs and tests/inference scores with its checkpoint. Read-only."""
    import time

    out = Path(os.environ[DEMO_DIR_ENV])
    deadline = time.monotonic() + 1800
    while not (out / "rc").exists():
        assert (out / "started").exists(), "the demo was not started (collection did not see a demo test)"
        assert time.monotonic() < deadline, "make demo did not finish within 30 minutes"
        time.sleep(2)
    stdout = (out / "stdout").read_text()
    rc = int((out / "rc").read_text())
    assert rc == 0, stdout[-3000:] + (out / "stderr").read_text()[-3000:]
    return out / "demo", stdout
