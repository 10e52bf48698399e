"""The pre-training DAG's stages as plain functions, with their skip / resume rules (no Prefect here).

``flows/pretrain.py`` wires them into the Prefect flow ``pretrain``; each is also usable on its own:

1. ``sample_corpus_stage``: writes the embedded sample corpus, or keeps the one there when its manifest says
   it was made from the same seed (only the ``demo`` recipe may run without downloaded files).
2. ingest and shards: ``xvlm.data.lake`` / ``xvlm.data.shards`` (their flows live in flows/ingest.py and
   flows/shards.py), logged by ``log_ingest`` / ``log_shards`` (one MLflow run each).
3. ``training_config`` + ``train_stage``: the run's ``PretrainConfig`` pointed at the build's shards and
   tagged with its data lineage; trained in-process on one device, through ``torchrun`` on several devices
   or nodes, in-process again under an external launcher (``xvlm.pipeline.launch``: head and followers).
   Resumes from ``out_dir/checkpoints/latest``; a run that already reached ``steps`` does no step.
4. evaluation: ``xvlm.pipeline.evaluation``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xvlm import fsio, progress
from xvlm.data.sample_corpus import MANIFEST, write_sample_corpus
from xvlm.errors import BadInput
from xvlm.pipeline.config import RunConfig
from xvlm.pipeline.launch import Launch, announced, follow
from xvlm.pipeline.launch import torchrun as launch_torchrun
from xvlm.train.config import PretrainConfig

log = logging.getLogger(__name__)
LogFn = Callable[[str], None]


def sample_corpus_stage(raw_root: str | Path, seed: int, recipe: str = "demo") -> str:
    """Write the sample corpus, or keep the one already there if it was made from the same seed.

    Not a cache: the check reads the corpus' own manifest, so a corpus deleted or edited by hand is
    rewritten. Any recipe but ``demo`` needs the downloaded files instead (``BadInput``).
    """
    if recipe != "demo":
        raise BadInput(f"recipe {recipe!r} needs raw_root: the folder holding the downloaded annotations")
    root = Path(raw_root)
    manifest = root / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text())["seed"] == seed:
        log.info("sample corpus at %s is current (seed %d)", root, seed)
        return str(root)
    write_sample_corpus(root, seed=seed, overwrite=True)
    log.info("sample corpus written to %s (seed %d)", root, seed)
    return str(root)


def ingest_sources(recipe: str) -> list[str]:
    """The lake sources a pre-training on ``recipe`` ingests: the recipe's own plus the split files its
    leak filter reads (``karpathy``, ``flickr30k``), in the lake's order. A raw root prepared for 4m
    (``xvlm prepare 4m``) has no CC12M / Objects365 / OpenImages files, and needs none."""
    from xvlm.data.lake import SOURCES
    from xvlm.data.shards.recipe import load_recipe

    wanted = {*load_recipe(recipe).sources, "karpathy", "flickr30k"}
    return [s for s in SOURCES if s in wanted]


def log_ingest(work_dir: str | Path, experiment: str, result: dict[str, Any]) -> str:
    """The ingest stage's MLflow run (rows in / loaded / quarantined per source and entity)."""
    from xvlm import tracking

    return tracking.log_ingest_run(tracking.experiment_id(experiment, Path(work_dir)), result)


def log_shards(work_dir: str | Path, experiment: str, build_dir: str | Path, lake_root: str | Path,
               totals: dict[str, Any]) -> str:
    """The shards stage's MLflow run (the data report and the build's totals)."""
    from xvlm import tracking

    return tracking.log_shards_run(tracking.experiment_id(experiment, Path(work_dir)), Path(build_dir),
                                   Path(lake_root), totals)


def train_dir(work_dir: str | Path) -> Path:
    """The training run's ``out_dir`` under a DAG's work dir (followers find the head's launch file there)."""
    return Path(work_dir) / "train"


def follow_stage(work_dir: str | Path, launch: Launch) -> dict[str, Any]:
    """A follower node or rank (``xvlm.pipeline.launch``): no data stage, train with the head's config."""
    log.info("node %d of %d (%s): waiting for the head's launch file in %s", launch.node_rank, launch.nnodes,
             "external launcher" if launch.external else "torchrun", train_dir(work_dir))
    return follow(train_dir(work_dir), launch)


def training_config(run: RunConfig, work_dir: str | Path, built: dict[str, Any],
                    lineage: dict[str, str]) -> PretrainConfig:
    """The training part of ``run``, reading the build's shards and tagged with where its data came from
    (recipe, build id, manifest hash, the ingest and shards MLflow runs)."""
    build = Path(built["out"])
    cfg = run.train_config()
    cfg.out_dir = str(train_dir(work_dir))
    cfg.data.shards = [str(build / "shards" / "*.tar")]
    cfg.tags = {**cfg.tags, "recipe": run.recipe, "recipe_hash": built["recipe_hash"],
                "build_id": built["build_id"], "manifest_hash": fsio.sha256_file(build / "manifest.parquet"), **lineage}
    return cfg


def train_stage(cfg: PretrainConfig, launch: Launch, experiment: str, work_dir: str | Path,
                log_fn: LogFn | None = None) -> dict[str, Any]:
    """Run (or resume) the training as the head (``xvlm.pipeline.launch``): in-process for one device or
    under an external launcher (this process is rank 0), ``torchrun`` for several devices or nodes. Returns
    the step reached, the last checkpoint, the MLflow run id, speed, and each loss's first / last window."""
    from xvlm import tracking

    uri = tracking.tracking_uri()
    exp_id = tracking.experiment_id(experiment, Path(work_dir)) if uri else None  # pins the artifact folder
    log.info("training %s for %d steps (%s) into %s; MLflow experiment %s", cfg.model, cfg.steps,
             f"{launch.processes} processes" if launch.processes > 1 else cfg.device, cfg.out_dir, exp_id)
    if launch.processes > 1 and not launch.external:
        return torchrun(cfg, launch, uri, experiment)
    from xvlm.train import train

    callbacks = [tracking.MLflowCallback(uri, experiment)] if uri else []
    with progress.use(progress.with_log(log_fn or log.info)), \
            announced(cfg, launch, experiment, uri):  # steps, loss, samples/s in the run's log
        result = train(cfg, callbacks)
    first, last = loss_windows(result.losses)
    return {"step": result.step, "checkpoint": str(result.last_checkpoint),
            "mlflow_run_id": callbacks[0].run_id if callbacks else None,
            "samples_per_s": result.samples_per_s, "wall_s": result.wall_s,
            "first_losses": first, "last_losses": last}


def torchrun(cfg: PretrainConfig, launch: Launch | int, tracking_uri: str | None, experiment: str,
             ) -> dict[str, Any]:
    """``torchrun`` on ``cfg`` (``xvlm.pipeline.launch.torchrun``); an int is that many devices on one node."""
    return launch_torchrun(cfg, Launch(devices=launch) if isinstance(launch, int) else launch, tracking_uri,
                           experiment)


def loss_windows(losses: list[dict[str, Any]], n: int = 20) -> tuple[dict[str, float], dict[str, float]]:
    """Each loss's mean over its first and its last ``n`` updates, counting only updates that computed it.

    One update is noisy, and in alternating mode an image-text update has no bbox loss (logged as 0) and a
    region update comes between image-text ones, so "first" and "last" are per loss, not per update.
    """
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    keys = [k for k in (losses[0] if losses else {}) if k not in ("step", "update", "loss")]
    for k in keys:
        vals = [float(r[k]) for r in losses if r.get(k)]
        if vals:
            first[k], last[k] = sum(vals[:n]) / len(vals[:n]), sum(vals[-n:]) / len(vals[-n:])
    return first, last


def pretrain_summary(work_dir: Path, raw_root: str, lake: dict[str, Any], built: dict[str, Any],
                     trained: dict[str, Any], experiment: str, evaluated: dict[str, Any] | None,
                     ingest_run: str, shards_run: str) -> dict[str, Any]:
    """What the ``pretrain`` flow returns: where every output is, the losses, the evaluation, the runs."""
    from xvlm.pipeline.evaluation import run_ids

    return {"work_dir": str(work_dir), "raw_root": raw_root, "lake_root": lake["lake_root"],
            "lake_db": lake["lake_db"], "stats": lake["stats"], "shards": built["out"],
            "samples_written": built["samples_written"], "train": trained, "experiment": experiment,
            "evaluation": evaluated,
            "mlflow_runs": {"ingest": ingest_run, "shards": shards_run, "pretrain": trained.get("mlflow_run_id"),
                            "evaluation": run_ids(evaluated or {})}}
