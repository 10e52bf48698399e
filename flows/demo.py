"""``make demo``: the whole DAG on the embedded sample corpus, locally.

Prefect runs in its local mode (a temporary API server over a SQLite database kept in
``OUT/.prefect``, so a later ``prefect server start`` with the same ``PREFECT_HOME`` shows the
runs) and MLflow logs to ``OUT/mlflow.db`` with artifacts in ``OUT/mlartifacts``.

The DAG is the ``pretrain`` flow with the ``demo`` preset (``configs/pretrain/demo.json``): sample
corpus -> ingest -> shards -> pre-training of the debug model -> evaluation (zero-shot and fine-tuned
retrieval and grounding on the sample corpus' Karpathy / RefCOCO+ splits, MLflow experiment
``xvlm-eval``, every run tagged with the pre-training run id). A rerun with nothing changed skips
every stage, the evaluation included, and prints the same numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def configure_local_services(out: Path) -> dict[str, str]:
    """Point Prefect and MLflow at files under ``out``; must run before either is imported."""
    from xvlm.envdefaults import apply_offline_defaults

    out.mkdir(parents=True, exist_ok=True)
    env = {
        "PREFECT_HOME": str(out / ".prefect"),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}",
    }
    os.environ.update(env)
    os.environ.pop("PREFECT_API_URL", None)
    apply_offline_defaults()
    return env


def run_demo(out: Path, seed: int = 0, smoke: bool = False) -> dict[str, Any]:
    """Configure local services, run the demo flow, print where everything is. ``smoke``: the same DAG
    with the short training of ``xvlm.pipeline.config.SMOKE_OVERRIDES`` (the test suite's run)."""
    configure_local_services(out)
    from flows.pretrain import pretrain  # imports prefect: only after the environment is set
    from xvlm.pipeline.config import SMOKE_OVERRIDES

    result = pretrain(preset="demo", work_dir=str(out), seed=seed, overrides=SMOKE_OVERRIDES if smoke else None)
    print_summary(out, result)
    return result


def print_summary(out: Path, result: dict[str, Any]) -> None:
    """The last thing ``make demo`` prints: outputs, and how to look at them."""
    lines = [
        "",
        "=" * 72,
        "Demo finished. Outputs:",
        f"  sample corpus (raw formats)  {result['raw_root']}",
        f"  lake (Parquet, by source)    {result['lake_root']}",
        f"  lake database (views)        {result['lake_db']}",
        f"  shards + manifest            {result['shards']}  ({result['samples_written']} samples)",
        f"  checkpoint                   {result['train']['checkpoint']}",
        f"  MLflow (SQLite)              {out / 'mlflow.db'}",
        f"  Prefect home (runs, SQLite)  {out / '.prefect'}",
        "",
        "Pre-training (debug model): " + _losses_line(result["train"]),
        *evaluation_lines(result),
        "",
        "Query the lake:",
        f"  .venv/bin/duckdb {result['lake_db']} \"select source, count(*) from regions group by all\"",  # noqa: S608
        f"  .venv/bin/xvlm lake stats {result['lake_root']}",
        "Open the MLflow UI:",
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{out / 'mlflow.db'} --host 127.0.0.1 --port 5000",
        f"  (experiment {result['experiment']}: runs 'ingest', 'shards' and the pre-training run"
        f" {result['train'].get('mlflow_run_id')};",
        "   experiment xvlm-eval: the evaluation runs, tag pretrain_run_id = that run)",
        "Open the Prefect UI (shows the demo's flow runs):",
        f"  PREFECT_HOME={out / '.prefect'} .venv/bin/prefect server start --host 127.0.0.1",
        "=" * 72,
    ]
    print("\n".join(lines))


def _losses_line(train: dict[str, Any]) -> str:
    first, last = train.get("first_losses") or {}, train.get("last_losses") or {}
    keys = [k for k in ("itc", "itm", "mlm", "bbox_l1", "bbox_giou") if k in first and k in last]
    parts = ", ".join(f"{k} {first[k]:.2f} -> {last[k]:.2f}" for k in keys)
    return f"{train.get('step', 0)} steps; {parts}" if parts else f"{train.get('step', 0)} steps"


def evaluation_lines(result: dict[str, Any]) -> list[str]:
    """Downstream numbers with their MLflow run ids; says so when they were reused from an earlier run."""
    ev = result.get("evaluation")
    if not ev:
        return []
    from xvlm.pipeline.retrieval_grounding import format_downstream

    head = f"Evaluation of {Path(ev['checkpoint']).name} (pre-training run {ev['pretrain_run_id']})"
    head += ", reused: same checkpoint and settings as before" if ev.get("skipped") else ""
    lines = ["", head + ":", *("  " + line for line in format_downstream(ev).splitlines())]
    if ev.get("vl"):
        from xvlm.pipeline.vl_tasks import format_vl

        lines += ["  " + line for line in format_vl(ev["vl"])]
    lines.append(f"  figures: MLflow artifacts figures/*.png of each run; outputs in {ev['out']}")
    return lines
