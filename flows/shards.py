"""Prefect flow ``shards``: lake -> samples -> webdataset shards, one task run per shard.

The work lives in :mod:`xvlm.data.shards`; this file wires it:

1. ``plan-samples``: the ``sql/samples`` queries + image probe -> ``samples.parquet`` and the plan
   (a no-op when the build folder already holds a plan with the same build id).
2. ``write-shard``, mapped over the shard ids still pending (a shard is done when its stats file
   exists), so a rerun after a crash writes only the unfinished shards.
3. ``finalize-shards``: manifest, quarantine, stats, audits (raises if an audit finds rows);
   then ``shard-views`` adds the samples/manifest views to ``lake.duckdb`` when one is given.

Retries only on transient I/O errors (flows/retry.py): a permission or full-disk fault, a bad input, a
bad sample or a failed audit is not retried.

Scaling out: the shard tasks run on the flow's task runner. Default: ``ThreadPoolTaskRunner``
(threads in this process). ``run_shards(..., dask=True)`` uses ``prefect_dask.DaskTaskRunner``: a
local cluster of ``n_workers`` processes, or an existing cluster with ``dask_address="tcp://..."``
(every worker needs this repo installed and the raw/lake/output paths mounted at the same place).
Ray works the same way with ``prefect_ray.RayTaskRunner(address=...)`` passed to
``shards.with_options(task_runner=...)``; results are bytes-identical whatever the runner, because
each shard's content depends only on the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from flows.retry import IO_RETRIES
from xvlm import progress
from xvlm.data.shards import (
    finalize,
    pending_shards,
    plan_build,
    write_shard,
    write_shard_views,
)


@task(name="plan-samples", **IO_RETRIES)
def plan_task(lake_root: str, raw_root: str, out_root: str, recipe: str, workers: int,
              allow_missing: list[str] | None = None, memory_limit: str = "2GB") -> tuple[str, dict[str, Any]]:
    out, plan = plan_build(lake_root, raw_root, out_root, recipe, workers=workers, allow_missing=allow_missing or (),
                           memory_limit=memory_limit)
    return str(out), plan


@task(name="write-shard", **IO_RETRIES,
      task_run_name="write-shard-{shard}")
def write_shard_task(out: str, shard: int, plan: dict[str, Any]) -> dict[str, Any]:
    return write_shard(Path(out), shard, plan)


@task(name="finalize-shards", **IO_RETRIES)
def finalize_task(out: str, plan: dict[str, Any], memory_limit: str = "2GB") -> dict[str, Any]:
    return finalize(Path(out), plan, memory_limit=memory_limit)


@task(name="shard-views", **IO_RETRIES)
def views_task(lake_db: str, out: str) -> list[str]:
    return write_shard_views(lake_db, out)


@flow(name="shards", task_runner=ThreadPoolTaskRunner(max_workers=2))
def shards(lake_root: str, raw_root: str, out_root: str, recipe: str = "demo", lake_db: str | None = None,
           workers: int = 4, allow_missing: list[str] | None = None, memory_limit: str = "2GB") -> dict[str, Any]:
    """Build the shards of ``recipe`` (name or JSON path); returns the totals plus ``out`` (build folder).

    ``allow_missing``: recipe sources the build may go without when the lake lacks them (recorded).
    ``memory_limit``: DuckDB's limit in ``plan-samples`` and ``finalize-shards`` (spilling beyond it)."""
    log = get_run_logger()
    out, plan = plan_task(lake_root, raw_root, out_root, recipe, workers, allow_missing, memory_limit)
    if plan.get("missing_sources"):
        log.warning("%s: built WITHOUT recipe sources %s (not in the lake; --allow-missing)", out,
                    plan["missing_sources"])
    todo = pending_shards(Path(out), plan)
    log.info("%s: %d samples in %d shards, %d to write", out, plan["stats"]["samples"], plan["n_shards"], len(todo))
    # Progress of each shard's samples (inside the tasks: the reporter travels in the copied context) and
    # of the shards, as log lines plus the CLI's bar if it set one.
    with progress.use(progress.with_log(log.info)), progress.task("shards", len(todo), unit="shard") as bar:
        futures = write_shard_task.map(unmapped(out), todo, unmapped(plan))
        written = []
        for fut in futures:
            written.append(fut.result())
            bar.advance()
    totals = finalize_task(out, plan, memory_limit, wait_for=futures)
    if lake_db:
        views_task(lake_db, out, wait_for=[totals])
    log.info("%s: %d samples written (%d this run), %d quarantined, audits %s", out, totals["samples_written"],
             sum(s["samples_written"] for s in written), totals["quarantined"], totals["audit"])
    return {**totals, "out": out, "shards_written_this_run": len(todo)}


def with_runner(dask: bool = False, n_workers: int = 2, dask_address: str | None = None) -> Any:
    """The ``shards`` flow on the chosen task runner: threads (default), a local Dask cluster of
    ``n_workers`` processes (``dask=True``), or an existing Dask cluster (``dask_address="tcp://host:8786"``:
    the flow connects as a client and leaves the cluster running)."""
    if not (dask or dask_address):
        return shards
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=dask_address) if dask_address else
              DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1,
                                             "processes": True, "dashboard_address": None}))
    return shards.with_options(task_runner=runner)


def run_shards(lake_root: str | Path, raw_root: str | Path, out_root: str | Path, recipe: str = "demo",
               lake_db: str | Path | None = None, dask: bool = False, n_workers: int = 2,
               dask_address: str | None = None, workers: int = 4, allow_missing: list[str] | None = None,
               memory_limit: str = "2GB") -> dict[str, Any]:
    """Run the flow with the chosen task runner (threads by default; Dask: :func:`with_runner`)."""
    f = with_runner(dask, n_workers, dask_address)
    return f(str(lake_root), str(raw_root), str(out_root), recipe=recipe,
             lake_db=str(lake_db) if lake_db else None, workers=workers, allow_missing=list(allow_missing or []),
             memory_limit=memory_limit)
