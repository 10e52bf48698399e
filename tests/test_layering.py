"""The layering rules of DEVELOPERS.md, checked over the whole repository's Python files.

- MLflow is imported in one module only, ``xvlm/tracking.py`` (the tests themselves read MLflow to check
  what was logged; they are the one exception);
- ``xvlm/`` never imports Prefect, and never imports ``flows``;
- (DuckDB only under ``xvlm/data/`` and SQL only in ``sql/``: tests/sql/test_sql_rules.py);
- a file that defines Prefect flows is a thin shell: at most 150 lines;
- the offline defaults have one table (``xvlm.envdefaults``) that the Makefile and compose file repeat.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = [p for top in ("xvlm", "flows", "bench", "scripts", "docker") for p in (REPO / top).rglob("*.py")]


def _imports(path: Path, module: str) -> bool:
    return re.search(rf"^\s*(import|from)\s+{module}\b", path.read_text(), re.M) is not None


def _rel(paths: list[Path]) -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in paths)


def test_the_code_scanned_is_the_whole_tree() -> None:
    assert len(CODE) > 100 and REPO / "xvlm" / "tracking.py" in CODE and REPO / "flows" / "cli.py" in CODE


def test_only_the_tracking_module_imports_mlflow() -> None:
    assert _rel([p for p in CODE if _imports(p, "mlflow")]) == ["xvlm/tracking.py"]


def test_the_library_never_imports_prefect_or_flows() -> None:
    lib = [p for p in CODE if p.is_relative_to(REPO / "xvlm")]
    assert _rel([p for p in lib if _imports(p, "prefect") or _imports(p, "flows")]) == []


def test_flow_files_are_thin() -> None:
    flow_files = [p for p in (REPO / "flows").glob("*.py") if "@flow" in p.read_text()]
    assert {p.name for p in flow_files} >= {"pretrain.py", "evaluate.py", "finetune_vl.py", "ingest.py", "shards.py"}
    long = {p.name: n for p in flow_files if (n := len(p.read_text().splitlines())) > 150}
    assert long == {}


@pytest.mark.parametrize("path", ["Makefile", "docker/compose.yaml"])
def test_offline_defaults_are_repeated_exactly(path: str) -> None:
    from xvlm.envdefaults import OFFLINE_DEFAULTS

    text = (REPO / path).read_text()
    for key in ("HF_HUB_OFFLINE", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY"):
        m = re.search(rf"{key}\s*(?::=|:)\s*\"?([A-Za-z0-9]+)\"?", text)
        assert m and m.group(1) == OFFLINE_DEFAULTS[key], (path, key)


def test_the_cli_default_k_is_the_library_default() -> None:
    from flows.cli import DEFAULT_K
    from xvlm.pipeline.config import DEFAULT_K as LIBRARY_K

    assert DEFAULT_K == LIBRARY_K


def test_flow_tasks_retry_on_io_errors_only() -> None:
    """Retries only on transient I/O (DEVELOPERS.md): every task that retries uses ``flows.retry.io_error_only``."""
    from prefect.tasks import Task

    import flows.evaluate
    import flows.ingest
    import flows.pretrain
    import flows.shards
    from flows.retry import io_error_only

    tasks = [obj for mod in (flows.evaluate, flows.ingest, flows.pretrain, flows.shards)
             for obj in vars(mod).values() if isinstance(obj, Task)]
    retrying = [t for t in tasks if t.retries]
    assert len(retrying) >= 8
    assert [t.name for t in retrying if t.retry_condition_fn is not io_error_only] == []


def test_io_error_only_tells_transient_io_from_the_rest() -> None:
    from flows.retry import io_error_only

    class State:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def result(self) -> None:
            raise self.exc

    assert io_error_only(None, None, State(ConnectionResetError("peer")))
    assert not io_error_only(None, None, State(ValueError("bad sample")))
