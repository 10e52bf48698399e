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
