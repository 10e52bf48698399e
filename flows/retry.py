"""Retry policy of the flows' tasks: retry on transient I/O only (a disk, a network file system, the MLflow
server's connection: all ``OSError``); a bad sample, a failed audit or a bug fails at once."""

from __future__ import annotations

from typing import Any


def io_error_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed run only when it failed with an ``OSError``."""
    try:
        state.result()
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is final
        return False
    return False


IO_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 1, "retry_condition_fn": io_error_only}
