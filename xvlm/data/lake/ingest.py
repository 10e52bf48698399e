"""Ingest orchestration: one source at a time, parse -> check images -> final tables -> atomic write.

Public entry points (no Prefect here; ``flows/ingest.py`` wraps them in tasks):

- :func:`source_fingerprint` - content fingerprint of one source's inputs + settings;
- :func:`ingest_source` - ingest one source (skipped when the lake already holds this fingerprint);
- :func:`ingest_lake` - every enabled source, then ``lake.duckdb``; returns the stats per source.

Stats per source: ``{"source", "fingerprint", "skipped", "entities": {entity: {"rows_in", "loaded",
"quarantined": {reason: n}}}}``. ``rows_in`` is counted on the candidate tables and checked to equal
loaded + quarantined for every entity before anything is written (a mismatch is a bug: it raises).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from xvlm import progress
from xvlm.data.lake import fingerprint as fp
from xvlm.data.lake.config import IngestConfig, LakeInputError, VgPaths
from xvlm.data.lake.fused import FusedRegions, fused_vg_regions
from xvlm.data.lake.images import check_images
from xvlm.data.lake.sources import PARSERS, parse_vg_regions, source_inputs, source_settings
from xvlm.data.lake.sqlrun import SqlRunner, memory_error
from xvlm.data.lake.views import write_lake_db
from xvlm.data.lake.writer import TABLES, is_current, read_manifest, write_source_partitions
from xvlm.errors import BadInput, MissingInput, ResourceLimit
from xvlm.fsio import require_folder

_CANDIDATES = {"cand_images": "empty_images", "cand_captions": "empty_captions", "cand_boxes": "empty_boxes",
               "cand_splits": "empty_splits", "cand_rejects": "empty_rejects",
               "image_checks": "empty_image_checks", "cand_aux": "empty_aux"}
# Candidate tables that can hold millions of rows: staged as Parquet on disk (bounded memory).
_STAGED = {"cand_images", "cand_captions", "cand_boxes", "cand_splits"}
_OUT_SQL = {"images": "out_images", "captions": "out_captions", "regions": "out_regions",
            "objects": "out_objects", "splits": "out_splits", "quarantine": "out_quarantine"}


def source_fingerprint(cfg: IngestConfig, source: str) -> str:
    """Fingerprint of ``source``'s inputs (file bytes or state, image-folder listings), settings and SQL.

    A missing or unreadable file is fingerprinted as such (its error is reported by the ingest, the
    source's other files still load); only a source with no input file present at all is refused."""
    inp = source_inputs(cfg, source)
    if inp.files and not any(p.exists() for p in inp.files):
        raise LakeInputError(inp.files[0], f"input file of source {source!r} not found (none of its "
                                           f"{len(inp.files)} input files is present)")
    return fp.fingerprint(inp.files, inp.image_dirs, source_settings(cfg, source))


def _blank(entity_names: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {e: {"rows_in": 0, "loaded": 0, "quarantined": {}} for e in entity_names}


def _add(into: dict[str, Any], e: dict[str, Any]) -> None:
    into["rows_in"] += e["rows_in"]
    into["loaded"] += e["loaded"]
    for r, n in e["quarantined"].items():
        into["quarantined"][r] = into["quarantined"].get(r, 0) + n
    if e.get("merged"):
        into["merged"] = into.get("merged", 0) + e["merged"]


def _stats(run: SqlRunner, source: str, fused: FusedRegions | None = None,
           region_file: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per entity, per input file and entity) counts; every entity a file holds is listed, zero rows
    included, and rows_in = loaded + quarantined is checked for each (a mismatch is a bug: it raises)."""
    files: dict[str, dict[str, dict[str, Any]]] = {f: _blank(es) for f, es in run.file_entities.items()}
    for file, entity, n in run.query("stats_rows_in"):
        files.setdefault(file, {}).setdefault(entity, _blank([entity])[entity])["rows_in"] += int(n)
    for file, entity, reason, n, merged in run.query("stats_outcomes"):
        e = files.setdefault(file, {}).setdefault(entity, _blank([entity])[entity])
        if reason is None:
            e["loaded"] += int(n)
            if merged:
                e["merged"] = e.get("merged", 0) + int(merged)
        else:
            e["quarantined"][reason] = e["quarantined"].get(reason, 0) + int(n)
    if fused is not None and region_file is not None:
        # Fused regions: rows_in counted by the check pass, loaded = rows the COPY wrote, quarantined
        # (in t_boxes) by stats_outcomes above - two separate passes, so the sum below is a real check.
        e = files.setdefault(region_file, {}).setdefault("regions", _blank(["regions"])["regions"])
        e["rows_in"] += fused.rows_in
        e["loaded"] += fused.loaded
    ent: dict[str, dict[str, Any]] = {}
    for file, es in files.items():
        for entity, e in es.items():
            if e["rows_in"] != e["loaded"] + sum(e["quarantined"].values()):
                raise AssertionError(f"{source}/{file}/{entity}: rows_in {e['rows_in']} != loaded {e['loaded']} + "
                                     f"quarantined {sum(e['quarantined'].values())} (rows lost: a bug)")
            _add(ent.setdefault(entity, _blank([entity])[entity]), e)
    return ({k: ent[k] for k in sorted(ent)},
            {f: {k: es[k] for k in sorted(es)} for f, es in sorted(files.items())})


def ingest_source(cfg: IngestConfig, source: str, fingerprint: str | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Ingest one source into ``cfg.out``; a no-op (``skipped``) if the lake holds this fingerprint."""
    if source not in PARSERS:
        raise BadInput(f"unknown source {source!r}; known: {sorted(PARSERS)}")
    paths = cfg.paths(source)
    pending: Future[str] | None = None
    if fingerprint is None and (force or read_manifest(cfg.out, source) is None):
        # Nothing to compare the fingerprint with (or told to re-ingest): it is needed only for the
        # manifest, so the inputs are hashed in a thread while the parse runs (bench/RESULTS.md, issue 3).
        # The parse does not wait for that read's UTF-8 verdict: it checks each JSON file itself first
        # (~0.1 s for VG's all-ASCII 0.7 GB, bytes.isascii), so those files are read twice on this path.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint")
        pending = pool.submit(source_fingerprint, cfg, source)
        pool.shutdown(wait=False)  # its one job still runs; result() waits for it
    else:
        fingerprint = fingerprint or source_fingerprint(cfg, source)
        if not force and is_current(cfg.out, source, fingerprint):
            m = read_manifest(cfg.out, source) or {}
            return {**m.get("stats", {}), "skipped": True}
    try:
        try:
            return _ingest(cfg, source, paths, fingerprint, pending)
        except duckdb.OutOfMemoryException as exc:
            raise memory_error(exc, f"ingest of source {source!r}", cfg.memory_limit, cfg.out / "_tmp") from exc
    except BaseException:
        if pending is not None:
            pending.result()  # a missing input file, as the fingerprint words it, names the cause best
        raise


def _ingest(cfg: IngestConfig, source: str, paths: Any, fingerprint: str | None,
            pending: Future[str] | None) -> dict[str, Any]:
    """:func:`ingest_source` past the skip check; ``pending`` delivers the fingerprint when it was hashed
    alongside (it is awaited before anything is written to the lake)."""
    t0 = time.perf_counter()
    (cfg.out / "_tmp").mkdir(parents=True, exist_ok=True)
    stage = cfg.out / "_tmp" / f"stage-{source}-{uuid.uuid4().hex}"
    run = SqlRunner.open(cfg.memory_limit, cfg.threads, cfg.out / "_tmp", stage_dir=stage)
    try:
        for table, sql in _CANDIDATES.items():
            if table in _STAGED:
                run.stage(table, sql)
            else:
                run.create(table, sql)
        fuse = cfg.fused_regions and isinstance(paths, VgPaths)
        regions_ok = PARSERS[source](run, cfg, paths, **({"regions": False} if fuse else {}))
        fuse = fuse and bool(regions_ok)
        if run.file_entities and len(run.file_errors) == len(run.file_entities):
            # no input file usable: nothing is written, the lake keeps what it had for this source
            raise SourceFailed(source, dict(run.file_errors))
        inp = source_inputs(cfg, source)
        check = inp.check_files and cfg.check_images
        if check:
            rows = run.query("images_to_check")
            checks = check_images(cfg.raw_root, rows, label=f"{source}: check images",
                                  min_side=cfg.min_image_side)
            run.con.register("image_checks_arrow", checks)
            run.insert("image_checks", "image_checks_rows")
            run.con.unregister("image_checks_arrow")
        run.stage("t_images", "final_images", check_files=check)
        fused = None
        if fuse:
            try:
                fused = fused_vg_regions(run, cfg, paths, stage / "regions.parquet")
            except LakeInputError as exc:  # the region file is unusable: a file-level error, the rest loads
                run.file_errors.setdefault(paths.region_descriptions, exc.detail)
                fuse = False
        if fuse and fused is None:  # a region id could repeat: generic path (duplicate_id needs every row)
            parse_vg_regions(run, cfg, paths)
        run.stage("t_captions", "final_captions")
        run.stage("t_boxes", "final_boxes", min_kept_fraction=cfg.min_kept_fraction)
        if fused is not None:
            run.insert("t_boxes", "fused_quarantine")
        run.stage("t_splits", "final_splits")
        entities, per_file = _stats(run, source, fused, paths.region_descriptions if fuse else None)
        if pending is not None:
            fingerprint = pending.result()
        errors = [{"file": f, "error": d} for f, d in sorted(run.file_errors.items())]
        stats = {"source": source, "fingerprint": fingerprint, "skipped": False, "entities": entities,
                 "files": per_file, "errors": errors, "seconds": round(time.perf_counter() - t0, 3)}
        manifest = {"source": source, "fingerprint": fingerprint, "stats": stats,
                    "files": [str(p) for p in inp.files], "tables": list(TABLES)}

        def write_table(table: str, path: Path) -> None:
            if table == "regions" and fused is not None:
                os.replace(fused.path, path)  # written by the fused pass; same file system (LAKE/_tmp)
            else:
                run.copy_parquet(_OUT_SQL[table], path, source=source)

        write_source_partitions(cfg.out, source, write_table, manifest)
        return stats
    finally:
        run.close()
        shutil.rmtree(stage, ignore_errors=True)


class SourceFailed(LakeInputError):
    """No input file of a source could be used; nothing was written for it. ``errors``: file -> why."""

    def __init__(self, source: str, errors: dict[str, str]) -> None:
        first = next(iter(errors.items()))
        super().__init__(first[0], first[1] if len(errors) == 1 else f"{first[1]} (and {len(errors) - 1} more)")
        self.source = source
        self.errors = errors


SOURCE_ERRORS = (LakeInputError, ResourceLimit)
"""What fails one source and not the ingest: no file of it usable, or DuckDB out of memory on it (the
other sources may fit; each source gets the whole ``memory_limit``)."""
ALL_FILES = "(all files)"  # the ``file`` of a source-wide error (out of memory): no one file is to blame


def failed_stats(source: str, exc: LakeInputError | ResourceLimit) -> dict[str, Any]:
    """The stats entry of a source that wrote nothing: its errors, no entities."""
    if isinstance(exc, ResourceLimit):
        errors = {ALL_FILES: str(exc)}
    else:
        errors = getattr(exc, "errors", None) or {exc.file: exc.detail}
    return {"source": source, "skipped": False, "failed": True, "entities": {}, "files": {},
            "errors": [{"file": f, "error": d} for f, d in errors.items()]}


def ingest_errors(stats: dict[str, dict[str, Any]]) -> list[str]:
    """Every file-level error of an ingest, one line each: ``source: file: why``."""
    return [f"{source}: {e['file']}: {e['error']}" for source, s in stats.items() for e in s.get("errors", [])]


def ingest_lake(cfg: IngestConfig, sources: list[str] | None = None, force: bool = False,
                log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Ingest ``sources`` (default: every enabled one), then (re)write ``lake.duckdb``; returns stats.

    A file that cannot be used as a whole is an error of that file only (``stats[source]["errors"]``;
    the source's other files and every other source still ingest); :func:`ingest_errors` lists them.
    """
    out: dict[str, dict[str, Any]] = {}
    todo = sources or cfg.enabled_sources()
    for source in todo:
        cfg.paths(source)  # an unknown source name: one line before anything is written
    if not Path(cfg.raw_root).is_dir():  # else every input file of every source is reported missing
        raise MissingInput(f"{cfg.raw_root}: raw root not found (the folder holding the sources' files)")
    require_folder(cfg.out)
    with progress.task("ingest", total=len(todo), unit="source") as bar:
        for source in todo:
            inp = source_inputs(cfg, source)
            if cfg.skip_missing_sources and not all(p.is_file() for p in inp.files):
                if log:
                    log(f"{source}: input files missing, skipped")
                bar.advance(last=source)
                continue
            try:
                out[source] = ingest_source(cfg, source, force=force)
            except SOURCE_ERRORS as exc:
                out[source] = failed_stats(source, exc)
            bar.advance(last=source)
            if log:
                log(format_source_stats(out[source]))
    write_lake_db(cfg.out)
    return out


def ingest(raw_root: str | Path, out: str | Path, sources: list[str] | None = None,
           force: bool = False, files: dict[str, str] | None = None,
           config: IngestConfig | None = None) -> dict[str, dict[str, Any]]:
    """Convenience for the CLI: ``config`` (default: the default layout) rooted at ``raw_root`` /
    ``out``, with ``files`` overriding file names by dotted key (:meth:`IngestConfig.with_files`)."""
    cfg = dataclasses.replace(config, raw_root=Path(raw_root), out=Path(out)) if config is not None else \
        IngestConfig(raw_root=Path(raw_root), out=Path(out))
    return ingest_lake(cfg.with_files(files or {}), sources, force)


def _entity_line(entity: str, e: dict[str, Any], indent: str) -> str:
    q = e["quarantined"]
    reasons = ", ".join(f"{r}={n}" for r, n in sorted(q.items())) or "-"
    merged = f", {e['merged']} identical to another file's" if e.get("merged") else ""
    return (f"{indent}{entity:<11} read {e['rows_in']:>9}  loaded {e['loaded']:>9}  "
            f"quarantined {sum(q.values()):>7}  ({reasons}{merged})")


def format_source_stats(s: dict[str, Any]) -> str:
    """One block of text per source: rows read, loaded, quarantined by reason, per entity; then the
    same per input file (every entity the file holds, zero rows included); then the file errors."""
    head = f"{s.get('source', '?')}{' (unchanged, skipped)' if s.get('skipped') else ''}"
    if s.get("failed"):
        head += " (FAILED: nothing written)"
    lines = [head]
    for entity, e in s.get("entities", {}).items():
        lines.append(_entity_line(entity, e, "  "))
    for file, es in s.get("files", {}).items():
        lines.append(f"  file {file}" + ("  ERROR" if any(x["file"] == file for x in s.get("errors", [])) else ""))
        for entity, e in es.items():
            lines.append(_entity_line(entity, e, "    "))
    for x in s.get("errors", []):
        lines.append(f"  error: {x['file']}: {x['error']}")
    return "\n".join(lines)
