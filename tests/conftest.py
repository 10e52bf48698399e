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
