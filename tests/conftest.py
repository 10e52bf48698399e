"""Shared test set-up: offline, telemetry off, and a session-scoped sample corpus."""

from __future__ import annotations

import os

# Must be set before prefect / mlflow / transformers are imported anywhere.
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_k, _v)

from collections.abc import Iterator  # noqa: E402  (the environment above comes first)

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
