"""Prefect flow ``demo``: the whole DAG on the embedded sample corpus.

sample corpus -> ingest (-> shards -> pretrain -> evaluate as those stages land). Every stage is
a task or a subflow, so the Prefect UI shows the DAG; each stage also gets an MLflow run in the
``xvlm-demo`` experiment with its numbers, so the MLflow UI shows what the data looked like.
Import this module only after :func:`flows.demo.configure_local_services` has set the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.ingest import ingest
from xvlm.data.sample_corpus import MANIFEST, write_sample_corpus

EXPERIMENT = "xvlm-demo"


@task(name="sample-corpus")
def sample_corpus(raw_root: str, seed: int) -> str:
    """Write the sample corpus, or keep the one already there if it was made from the same seed.

    Not a Prefect cache: the check reads the corpus' own manifest, so a corpus deleted or edited
    by hand is rewritten.
    """
    root = Path(raw_root)
    manifest = root / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text())["seed"] == seed:
        get_run_logger().info("sample corpus at %s is current (seed %d)", root, seed)
        return str(root)
    write_sample_corpus(root, seed=seed, overwrite=True)
    get_run_logger().info("sample corpus written to %s (seed %d)", root, seed)
    return str(root)


@task(name="log-ingest-to-mlflow", retries=2, retry_delay_seconds=1)
def log_ingest_to_mlflow(out: str, result: dict[str, Any]) -> str:
    """One MLflow run for the ingest stage: per-source loaded/quarantined counts and the stats file."""
    import mlflow

    mlflow.set_experiment(experiment_id=_experiment_id(Path(out)))
    with mlflow.start_run(run_name="ingest") as run:
        mlflow.set_tags({"stage": "ingest", "lake_root": result["lake_root"]})
        for source, s in result["stats"].items():
            for entity, e in s.get("entities", {}).items():
                mlflow.log_metrics({
                    f"{source}.{entity}.rows_in": e["rows_in"],
                    f"{source}.{entity}.loaded": e["loaded"],
                    f"{source}.{entity}.quarantined": sum(e["quarantined"].values()),
                })
        mlflow.log_dict(result["stats"], "ingest_stats.json")
        return run.info.run_id


def _experiment_id(out: Path) -> str:
    """The demo experiment, with its artifacts pinned under ``out`` (not the current directory)."""
    import mlflow

    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    if mlflow.get_tracking_uri().startswith("http"):  # a tracking server stores the artifacts itself
        return mlflow.create_experiment(EXPERIMENT)
    return mlflow.create_experiment(EXPERIMENT, artifact_location=(out / "mlartifacts").as_uri())


@flow(name="demo")
def demo_flow(out: str, seed: int = 0) -> dict[str, Any]:
    """Run every stage on the sample corpus under ``out``; returns where each output is."""
    raw_root = sample_corpus(str(Path(out) / "raw"), seed)
    lake = ingest(raw_root=raw_root, out=str(Path(out) / "lake"))
    run_id = log_ingest_to_mlflow(out, lake)
    return {
        "raw_root": raw_root,
        "lake_root": lake["lake_root"],
        "lake_db": lake["lake_db"],
        "stats": lake["stats"],
        "mlflow_runs": {"ingest": run_id},
    }
