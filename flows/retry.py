"""Retry policy of the flows' tasks: retry on transient I/O only (a network file system's EIO or ESTALE, a
timed-out or reset connection to the MLflow server: ``xvlm.fsio.is_transient_io``). A permission fault, a
read-only or full folder (``PermissionError``, EROFS, ENOSPC), a missing file, bad input (``BadInput``, even
``MissingInput``, which is also a ``FileNotFoundError``), a bad sample, a failed audit or a bug fails at
once: retrying it would only repeat the same error twice more."""

from __future__ import annotations

from typing import Any

from xvlm.fsio import is_transient_io


def io_error_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed run only when it failed with a transient I/O error."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the exception is only classified here
        return is_transient_io(exc)
    return False


IO_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 1, "retry_condition_fn": io_error_only}
