"""Prefect flow ``prepare``: fetch, check and lay out a recipe's raw files, then its web images.

Tasks (the work is in :mod:`xvlm.data.prepare`; this file only wires it):

1. ``fetch-files``: every catalogue file of the recipe, a few in parallel (resumed, checked, unpacked;
   complete files skipped). Retried on I/O errors only: a rerun resumes the partial downloads.
2. ``web-images``: img2dataset over each web source's caption file (incremental: finished shards kept).
3. ``log-prepare-to-mlflow``: files per outcome and img2dataset's counts (when MLflow is configured).

The flow fails (after logging every file's line) when a file failed or still needs manual access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.retry import IO_RETRIES
from xvlm import progress
from xvlm.data.prepare import PrepareReport, fetch_files, image_settings, web_images
from xvlm.errors import BadInput


@task(name="fetch-files", **IO_RETRIES)
def fetch_task(recipe: str, root: str, mirror: str | None, sources: list[str] | None, workers: int,
               dry_run: bool) -> PrepareReport:
    return fetch_files(recipe, root, mirror=mirror, sources=sources, workers=workers, dry_run=dry_run)


@task(name="web-images")
def web_task(report: PrepareReport, processes: int | None, threads: int,
             sources: list[str] | None) -> PrepareReport:
    return web_images(report, image_settings(report.recipe, processes, threads), sources)


@task(name="log-prepare-to-mlflow", **IO_RETRIES)
def log_task(root: str, report: dict[str, Any]) -> str:
    from xvlm import tracking

    return tracking.log_prepare_run(tracking.experiment_id(f"prepare-{report['recipe']}",
                                                           Path(root) / ".prepare"), report)


@flow(name="prepare")
def prepare(recipe: str = "4m", root: str = "raw", mirror: str | None = None, sources: list[str] | None = None,
            workers: int = 3, web: bool = True, processes: int | None = None, threads: int = 64,
            dry_run: bool = False) -> dict[str, Any]:
    """Lay out ``recipe``'s files under ``root`` (see ``xvlm prepare --help``); returns the report."""
    log = get_run_logger()
    with progress.use(progress.with_log(log.info)):
        report = fetch_task(recipe, root, mirror, sources, workers, dry_run)
        if web and not dry_run:
            report = web_task(report, processes, threads, sources)
    for line in report.lines():
        log.info("%s", line)
    if not dry_run and os.environ.get("MLFLOW_TRACKING_URI"):
        log_task(root, report.to_dict())
    if not report.ok and not dry_run:
        raise BadInput(f"prepare {recipe} is incomplete under {root}: {report.counts()} (see the lines above)")
    return report.to_dict()
