"""Shared test set-up: offline, telemetry off, one-thread and negative-sampler fixtures, and the demo runs
shared by a session."""

from __future__ import annotations

import os

# Must be set before prefect / mlflow / transformers are imported anywhere.
from xvlm.envdefaults import apply_offline_defaults  # noqa: E402

apply_offline_defaults(extra={"PREFECT_LOGGING_LEVEL": "WARNING"})
if os.environ.get("PYTEST_XDIST_WORKER"):
    # ``make test`` runs two workers on the two cores: one torch / OpenMP thread each (before torch is
    # imported; subprocesses inherit it). Two 2-thread processes on 2 cores spin-wait on each other and
    # ran the demo's training several times slower (measured: 3.5 s per update instead of 0.33 s).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import subprocess  # noqa: E402  (the environment above comes first)
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Test files by their measured time on the 2-core machine, longest first. ``make test`` hands whole files to
# its two workers (``--dist loadfile``: the demo fixture runs once, in the worker that has test_demo.py) in
# collection order, so the long files start first and the short ones fill in behind them. A file not
# listed keeps its place after these.
LONGEST_FIRST = (
    "tests/flows/test_demo.py",
    "tests/train/test_train.py",
    "tests/flows/test_pretrain_eval.py",
    "tests/eval/test_retrieval.py",
    "tests/cli/test_cli.py",
    "tests/cli/test_evaluate_cli.py",
    "tests/train/test_uneven_ranks.py",
    "tests/eval/test_finetune_vl_flow.py",
    "tests/train/test_run_status.py",
    "tests/train/test_multinode.py",
    "tests/eval/test_caption_metrics.py",
    "tests/train/test_tracking_learning.py",
    "tests/eval/test_retrieval_flow.py",
    "tests/shards/test_flow.py",
    "tests/flows/test_ingest_flow.py",
    "tests/models/test_distributed.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order kept


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


def _make_demo(out: Path, *options: str) -> str:
    """``flows.cli demo --out OUT [options]`` in a subprocess (its own Prefect / MLflow state under OUT)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--out", str(out), *options],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(out_dir, stdout)`` of ``make demo``'s DAG with ``--smoke`` (every stage: ingest -> shards -> the
    ``pretrain-demo`` preset at 40 steps -> evaluation with 20-step fine-tunes; about two minutes), run once
    per session: tests/flows/test_demo.py checks its outputs, tests/inference loads its checkpoint.
    Read-only for the tests."""
    out = tmp_path_factory.mktemp("demo")
    return out, _make_demo(out, "--smoke")


@pytest.fixture(scope="session")
def demo_full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(out_dir, stdout)`` of the whole ``make demo`` (600 steps; ~8 minutes on 2 cores), for the slow
    tests that check what the demo learned (``make test-slow``, run by CI). Read-only for the tests."""
    out = tmp_path_factory.mktemp("demo-full")
    return out, _make_demo(out)
