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


def log_shards_run(exp_id: str, build_dir: Path, lake_root: Path, totals: dict[str, Any]) -> str:
    """One run for the shards stage: the data report (PNG + its numbers: samples per source, removed
    and leaked, quarantined by reason) and the build's totals."""
    import mlflow

    from xvlm.viz import data_report

    report = data_report(build_dir, lake_root=lake_root)
    with mlflow.start_run(experiment_id=exp_id, run_name="shards") as run:
        mlflow.set_tags({"stage": "shards", "build_dir": str(build_dir), "recipe": totals.get("recipe", ""),
                         "recipe_hash": totals.get("recipe_hash", ""), "build_id": totals.get("build_id", "")})
        mlflow.log_metrics({**report.metrics(), "shards": float(totals.get("n_shards", 0)),
                            "samples_written": float(totals.get("samples_written", 0))})
        mlflow.log_artifact(str(report.png), "report")
        mlflow.log_dict(report.to_dict(), "report/data_report.json")
        return run.info.run_id


class FinetuneMlflowCallback:
    """``xvlm.eval.finetune`` callback: per-step losses (every ``every`` steps) and per-epoch validation
    metrics, logged to the active MLflow run."""

    def __init__(self, every: int = 10) -> None:
        self.every = every

    def on_step(self, step: int, losses: dict[str, float], lr: float) -> None:
        import mlflow

        if step % self.every == 0 or step == 1:
            mlflow.log_metrics({**{f"train/{k}": v for k, v in losses.items()}, "train/lr": lr}, step=step)

    def on_eval(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics({f"val/{k}": v for k, v in metrics.items()}, step=step)
