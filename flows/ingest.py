"""Prefect flow ``ingest``: raw annotation files -> Parquet lake + ``lake.duckdb``.

One task run per source (parsing and writing live in :mod:`xvlm.data.lake`; this file only wires them):

1. ``fingerprint-source``: content fingerprint of the source's files (sha256), image-folder listings,
   settings and SQL text. Retried: it is pure I/O.
2. ``ingest-source``: cached on its inputs (``INPUTS + TASK_SOURCE``, results persisted under
   ``<lake>/_prefect``): the source name, the config, the fingerprint and whether the lake currently
   holds that fingerprint. Same inputs => the task does not run at all; a changed file changes only
   its source's fingerprint, so only that source re-ingests. Under the cache, the library itself also
   skips a source whose manifest matches, so a rerun rewrites nothing even with caching off.
3. ``write-lake-db``: views over the Parquet files.

The flow logs the per-source stats (rows read / loaded / quarantined by reason, per file) and returns
them. A file that cannot be used as a whole (empty, truncated, unreadable, ...) is an error of that file
only: the source's other files and every other source still ingest and ``lake.duckdb`` is written;
then the errors are logged (one line each) and published as the markdown artifact ``ingest-errors``,
and the flow ends **Failed** (it raises :class:`IngestErrors`, a ``BadInput``: the CLI prints one line
and exits 2), so a pipeline never trains on a lake that silently lacks a file (docs/lake.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from flows.retry import IO_RETRIES
from xvlm import progress
from xvlm.data.lake import (
    IngestConfig,
    format_source_stats,
    ingest_errors,
    ingest_source,
    source_fingerprint,
    write_lake_db,
)
from xvlm.data.lake.ingest import SOURCE_ERRORS, failed_stats
from xvlm.data.lake.sources import source_inputs
from xvlm.data.lake.writer import is_current
from xvlm.errors import BadInput
from xvlm.fsio import require_folder


class IngestErrors(BadInput):
    """Some input files could not be used (the rest was ingested); ``stats`` is what was written."""

    def __init__(self, errors: list[str], stats: dict[str, Any]) -> None:
        super().__init__(f"{len(errors)} input file(s) could not be used, everything else was ingested: "
                         + "; ".join(errors))
        self.errors = errors
        self.stats = stats


@task(name="fingerprint-source", **IO_RETRIES)
def fingerprint_source(config: dict[str, Any], source: str) -> str:
    return source_fingerprint(IngestConfig.from_dict(config), source)


@task(name="ingest-source", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def ingest_source_task(config: dict[str, Any], source: str, fingerprint: str, lake_current: bool) -> dict[str, Any]:
    """Ingest one source. ``lake_current`` is part of the cache key so a deleted lake is rebuilt."""
    return ingest_source(IngestConfig.from_dict(config), source, fingerprint=fingerprint)


@task(name="write-lake-db", **IO_RETRIES)
def write_lake_db_task(out: str) -> str | None:
    p = write_lake_db(Path(out))
    return str(p) if p else None


@flow(name="ingest")
def ingest(raw_root: str, out: str, sources: list[str] | None = None,
           config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest every enabled source (or ``sources``); returns ``{"lake_root", "lake_db", "stats"}``.

    ``config`` is an ``IngestConfig.to_dict()`` (JSON variant) for non-default paths; ``raw_root`` and
    ``out`` override its roots.
    """
    log = get_run_logger()
    cfg = IngestConfig.from_dict({**(config or {}), "raw_root": raw_root, "out": out})
    cfg_dict = cfg.to_dict()
    for source in sources or cfg.enabled_sources():
        cfg.paths(source)  # an unknown source name: BadInput before anything runs
    require_folder(cfg.out)
    cached_task = ingest_source_task.with_options(result_storage=Path(out).resolve() / "_prefect")
    stats: dict[str, Any] = {}
    todo = sources or cfg.enabled_sources()
    # Progress (sources, and image checks inside a source) as log lines, plus the CLI's bar if it set one.
    with progress.use(progress.with_log(log.info)), progress.task("ingest", len(todo), unit="source") as bar:
        for source in todo:
            if cfg.skip_missing_sources and not all(p.is_file() for p in source_inputs(cfg, source).files):
                log.warning("%s: input files missing, skipped", source)
                bar.advance(last=source)
                continue
            try:
                fp = fingerprint_source(cfg_dict, source)
                stats[source] = cached_task(cfg_dict, source, fp, is_current(cfg.out, source, fp))
            except SOURCE_ERRORS as exc:  # no file of the source usable, or out of memory: it writes nothing, the rest goes on
                stats[source] = failed_stats(source, exc)
            bar.advance(last=source)
            log.info("%s", format_source_stats(stats[source]))
    lake_db = write_lake_db_task(str(cfg.out))
    errors = ingest_errors(stats)
    if errors:
        for e in errors:
            log.error("%s", e)
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key="ingest-errors", description="input files that could not be used",
                                 markdown="\n".join(["| source: file: error |", "|---|", *(f"| {e} |" for e in errors)]))
        raise IngestErrors(errors, stats)
    return {"lake_root": str(cfg.out), "lake_db": lake_db, "stats": stats}
