"""MLflow helpers shared by the flows (the ``xvlm`` library imports MLflow only in ``xvlm/tracking.py``).

Experiments are created once per name. With a local ``sqlite:///`` tracking URI the artifacts are
pinned under the run's work folder (MLflow's default is ``./mlruns`` of whatever the current
directory is); a tracking server stores artifacts itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def experiment_id(name: str, work_dir: Path) -> str:
    """The id of experiment ``name``, creating it (artifacts under ``work_dir/mlartifacts``) if needed."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if mlflow.get_tracking_uri().startswith(("http://", "https://")):
        return mlflow.create_experiment(name)
    return mlflow.create_experiment(name, artifact_location=(work_dir / "mlartifacts").resolve().as_uri())


def log_ingest_run(exp_id: str, result: dict[str, Any]) -> str:
    """One run for the ingest stage: per-source rows in / loaded / quarantined, and the stats file."""
    import mlflow

    with mlflow.start_run(experiment_id=exp_id, run_name="ingest") as run:
        mlflow.set_tags({"stage": "ingest", "lake_root": result["lake_root"]})
        metrics: dict[str, float] = {}
        for source, s in result["stats"].items():
            for entity, e in s.get("entities", {}).items():
                metrics[f"{source}.{entity}.rows_in"] = e["rows_in"]
                metrics[f"{source}.{entity}.loaded"] = e["loaded"]
                metrics[f"{source}.{entity}.quarantined"] = sum(e["quarantined"].values())
        mlflow.log_metrics(metrics)
        mlflow.log_dict(result["stats"], "ingest_stats.json")
        return run.info.run_id
