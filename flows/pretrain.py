"""Prefect flow ``pretrain``: raw files -> lake -> shards -> pre-training -> evaluation, one DAG.

The stages and their skip / resume rules live in ``xvlm.pipeline`` (read its ``stages`` module); the run's
configuration is one ``RunConfig`` tree (``xvlm.pipeline.config``): a preset
``configs/pretrain/{demo,4m,16m}.json`` with ``overrides`` merged in (e.g.
``{"init_bert": "/models/bert-base-uncased"}``; relative ``init_*`` paths are under ``weights_root`` or
``$XVLM_WEIGHTS``). Before any stage the start check runs (``xvlm.pipeline.preflight.check_run``: the whole
config, the starting weights, a resume checkpoint); ``check=True`` runs only that. MLflow: ``MLFLOW_TRACKING_URI`` (a local SQLite file in
the demo, the tracking server under ``xvlm serve``); experiment ``pretrain-<preset>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.exceptions import MissingContextError

from flows.evaluate import evaluation
from flows.ingest import ingest
from flows.retry import IO_RETRIES
from flows.shards import shards, with_runner
from xvlm.pipeline import stages
from xvlm.pipeline.config import experiment_name, resolve_run
from xvlm.pipeline.launch import Launch
from xvlm.pipeline.preflight import check_run
from xvlm.train.config import PretrainConfig


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger; a plain one when called as ``pretrain.fn`` (the check alone, in tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@task(name="sample-corpus")
def sample_corpus(raw_root: str, seed: int, recipe: str) -> str:
    return stages.sample_corpus_stage(raw_root, seed, recipe)


@task(name="log-ingest-to-mlflow", **IO_RETRIES)
def log_ingest(work_dir: str, experiment: str, result: dict[str, Any]) -> str:
    return stages.log_ingest(work_dir, experiment, result)


@task(name="data-report-to-mlflow", **IO_RETRIES)
def log_shards(work_dir: str, experiment: str, build_dir: str, lake_root: str, totals: dict[str, Any]) -> str:
    return stages.log_shards(work_dir, experiment, build_dir, lake_root, totals)


@task(name="train")
def train(config: dict[str, Any], launch: dict[str, Any], experiment: str, work_dir: str) -> dict[str, Any]:
    return stages.train_stage(PretrainConfig.from_dict(config), Launch(**launch), experiment, work_dir,
                              log_fn=get_run_logger().info)


@task(name="train-follower")
def follow(work_dir: str, launch: dict[str, Any]) -> dict[str, Any]:
    return stages.follow_stage(work_dir, Launch(**launch))


@flow(name="pretrain")
def pretrain(preset: str = "demo", work_dir: str = "runs/pretrain-demo", raw_root: str | None = None,
             steps: int | None = None, devices: int = 1, overrides: dict[str, Any] | None = None,
             seed: int = 0, evaluations: list[str] | None = None,
             downstream_root: str | None = None, weights_root: str | None = None,
             check: bool = False, nnodes: int = 1, node_rank: int = 0, rdzv_endpoint: str | None = None,
             rdzv_id: str | None = None, shards_dask_address: str | None = None,
             shards_memory_limit: str = "2GB") -> dict[str, Any]:
    """ingest -> shards -> train -> evaluation for ``preset``; returns where every output is, the final
    losses and the evaluation results (``evaluation``; None when no evaluation was asked for).

    ``raw_root``: the raw files (real downloads, or any folder in the sample-corpus layout); None
    with the demo recipe writes the sample corpus (``seed``) into ``work_dir/raw``.
    ``devices``: processes for torchrun (GPUs, or CPU processes with gloo); 1 runs in-process.
    ``nnodes`` / ``node_rank`` / ``rdzv_endpoint`` / ``rdzv_id``: several nodes through a c10d rendezvous
    (``xvlm.pipeline.launch``): node 0 runs the DAG, every other node only trains with node 0's config.
    Under an external launcher (RANK / WORLD_SIZE / MASTER_ADDR set) rank 0 runs the DAG, training in
    this process; the other ranks only train.
    ``evaluations``: any of ``retrieval, grounding, vqa, nlvr2, caption`` (None: the preset's
    ``downstream.evaluations``; [] skips the stage). ``downstream_root``: the downstream splits (None:
    the preset's ``downstream.raw_root``, else ``raw_root``). ``weights_root``: where relative
    ``init_bert`` / ``init_swin`` are (None: ``$XVLM_WEIGHTS``). ``check``: run the start check only.
    ``shards_dask_address``: write the shards on this existing Dask cluster (``tcp://host:8786``; its
    workers see the work dir and ``raw_root`` at the same paths) instead of two threads here.
    ``shards_memory_limit``: DuckDB's memory_limit in the shards flow's samples step and audits (e.g.
    ``16GB`` on a machine with the memory: the 16M samples step is 1.6x faster; docs/scale.md).
    """
    work = Path(work_dir).resolve()
    launch = Launch(devices, nnodes, node_rank, rdzv_endpoint, rdzv_id)
    if not launch.is_head:  # a follower: no data stage, no evaluation; the head keeps the lineage
        return {"train": follow(str(work), launch.to_dict()), "follower": True}
    run = resolve_run(preset, overrides, steps, evaluations, weights_root)
    checked = check_run(run, work)  # before any stage: config, starting weights, resume checkpoint
    _logger().info("start check passed:\n%s", "\n".join(checked.lines()))
    if check:
        return {"check": checked.to_dict()}
    experiment = experiment_name(preset)
    raw_root = raw_root or sample_corpus(str(work / "raw"), seed, run.recipe)
    lake = ingest(raw_root=raw_root, out=str(work / "lake"), sources=stages.ingest_sources(run.recipe))
    ingest_run = log_ingest(str(work), experiment, lake)
    shards_flow = with_runner(dask_address=shards_dask_address) if shards_dask_address else shards
    built = shards_flow(lake["lake_root"], raw_root, str(work / "shards"), recipe=run.recipe, lake_db=lake["lake_db"],
                        memory_limit=shards_memory_limit)
    shards_run = log_shards(str(work), experiment, built["out"], lake["lake_root"], built)
    cfg = stages.training_config(run, work, built, {"ingest_run_id": ingest_run, "shards_run_id": shards_run})
    trained = train(cfg.to_dict(), launch.to_dict(), experiment, str(work))
    evaluated = None
    if run.downstream.evaluations:
        evaluated = evaluation(trained["checkpoint"], downstream_root or run.downstream.raw_root or raw_root,
                               str(work), trained.get("mlflow_run_id"), run.model, run.downstream)
    return stages.pretrain_summary(work, raw_root, lake, built, trained, experiment, evaluated,
                                   ingest_run, shards_run)
