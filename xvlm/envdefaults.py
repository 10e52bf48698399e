"""The offline / telemetry-off environment every entry point sets (DEVELOPERS.md, "The machine").

One table, applied with ``setdefault`` (a user's own setting wins) by the CLI, the demo, the local
services and the test suite, before Prefect, MLflow or transformers are imported: those read the
variables at import time. The Makefile and docker/compose.yaml repeat the first four in their own
syntax (a test checks they agree with this table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

OFFLINE_DEFAULTS: Mapping[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Prefect's local API server gets 20 s to start by default: too short on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # img2dataset (xvlm prepare): albumentations checks PyPI for updates at import; wandb stays off
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "disabled",
}


def apply_offline_defaults(env: MutableMapping[str, str] | None = None,
                           extra: Mapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set every default (and ``extra``) in ``env`` (default ``os.environ``) unless already set."""
    target = os.environ if env is None else env
    for key, value in {**OFFLINE_DEFAULTS, **(extra or {})}.items():
        target.setdefault(key, value)
    return target
