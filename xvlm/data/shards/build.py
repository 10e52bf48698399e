"""The shard build, end to end, without Prefect: plan (samples) -> every shard -> finalize (manifest, audits).

``flows/shards.py`` maps :func:`write_shard` over shard ids with a Prefect task runner; this module is
the same sequence in one process (CLI, tests, benchmarks). Layout of one build::

    <out_root>/<recipe>-<build_id[:12]>/
        samples.parquet removed.parquet dropped_texts.parquet samples.json     (plan; samples.json last)
        shards/<recipe>-000000.tar  .manifest.parquet  .stats.json              (stats.json last)
        manifest.parquet quarantine.parquet stats.json audit.json               (finalize; stats.json last)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from xvlm.data.lake.sqlrun import SqlRunner, memory_error, view_ddl
from xvlm.data.shards.recipe import Recipe, build_id, load_recipe
from xvlm.data.shards.samples import (
    _create_lake_views,
    build_samples,
    lake_fingerprints,
    missing_sources,
    read_plan,
)
from xvlm.data.shards.writer import (
    MANIFEST_SCHEMA,
    read_tar_members,
    shard_done,
    shard_paths,
    write_shard,
)
from xvlm.errors import MissingInput
from xvlm.fsio import atomic_path, write_json

AUDITS = ("audit_boxes_inside", "audit_no_leak", "audit_unique_keys", "audit_manifest_members")
QUARANTINE_SCHEMA = pa.schema([("shard", pa.int32()), ("key", pa.string()), ("reason", pa.string()),
                               ("detail", pa.string())])


LINEAGE_KEY = "xvlm.lineage"
"""Key of the manifest.parquet schema metadata holding :func:`lineage` (JSON)."""


def lineage(plan: dict[str, Any]) -> dict[str, Any]:
    """What a manifest was built from: recipe, its hash, the build id, the lake, and the recipe sources
    the lake did not hold (built without them only because ``--allow-missing`` named them)."""
    return {"recipe": plan["recipe"]["name"], "recipe_hash": plan["recipe_hash"], "build_id": plan["build_id"],
            "lake_root": plan["lake_root"], "sources": list(plan["recipe"]["sources"]),
            "missing_sources": list(plan.get("missing_sources", []))}


def read_lineage(manifest: str | Path) -> dict[str, Any]:
    """The :func:`lineage` stored in a ``manifest.parquet``."""
    meta = pq.read_schema(manifest).metadata or {}
    return json.loads(meta.get(LINEAGE_KEY.encode(), b"{}"))


class AuditError(AssertionError):
    """An audit query returned rows; the message names the audit and the first offending rows."""


def build_dir(out_root: str | Path, recipe: Recipe, lake_root: str | Path) -> Path:
    """``<out_root>/<recipe>-<build id[:12]>``: the build id covers the recipe, SQL and lake content."""
    bid = build_id(recipe, lake_fingerprints(Path(lake_root).resolve(), list(recipe.sources)))
    return Path(out_root) / f"{recipe.name}-{bid[:12]}"


def plan_build(lake_root: str | Path, raw_root: str | Path, out_root: str | Path, recipe: Recipe | str,
               workers: int = 4, allow_missing: Sequence[str] = (), memory_limit: str = "2GB"
               ) -> tuple[Path, dict[str, Any]]:
    """Build (or reuse) the samples of ``recipe``; returns ``(build folder, plan)``.

    ``memory_limit`` is the samples step's DuckDB limit (beyond it DuckDB spills into the build folder;
    more memory makes the 16M step faster, not different: bench/RESULTS.md, issue 15).

    A recipe source absent from the lake is ``MissingInput`` naming it, before any folder is made,
    unless it is in ``allow_missing`` (then recorded in the plan, the stats and the manifest's lineage)."""
    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    missing_sources(lake_root, recipe, allow_missing)
    out = build_dir(out_root, recipe, lake_root)
    return out, build_samples(lake_root, raw_root, out, recipe, workers=workers, allow_missing=allow_missing,
                              memory_limit=memory_limit)


def pending_shards(out: Path, plan: dict[str, Any]) -> list[int]:
    """Shard ids without a stats file: what a (re)run still has to write."""
    return [i for i in range(plan["n_shards"]) if not shard_done(out, plan["recipe"]["name"], i)]


def write_shards(out: Path, plan: dict[str, Any], shard_ids: list[int] | None = None, threads: int = 1
                 ) -> list[dict[str, Any]]:
    """Write the given (default: pending) shards in this process, ``threads`` shards at a time.

    Threads help because reading, hashing and writing release the GIL (what the flow's default
    ThreadPoolTaskRunner does too); the bytes do not depend on the thread count.
    """
    ids = pending_shards(out, plan) if shard_ids is None else shard_ids
    if threads <= 1:
        return [write_shard(out, i, plan) for i in ids]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda i: write_shard(out, i, plan), ids))


_ROWS_PER_GROUP = 1 << 17
"""Rows buffered before a row group is written by :func:`_stream_parquet`: finalize holds this many rows
(~30 MB of manifest), never the corpus (16.8M manifest rows, ~33M tar members at recipe 16m)."""
_MEMBERS = ".audit_members.parquet"
"""Every tar member (tar, name, off, size) for the audits, in the build folder while they run (view
``a_members``); hidden, and removed after, so it is never taken for a build output."""
MEMBERS_SCHEMA = pa.schema([("tar", pa.string()), ("name", pa.string()), ("off", pa.int64()), ("size", pa.int64())])


def _stream_parquet(tables: Iterable[pa.Table], path: Path, schema: pa.Schema) -> int:
    """Write ``tables`` (each cast to ``schema``, metadata included) in order into one Parquet file at
    ``path``, atomically; returns the rows written. Memory: one buffer of ``_ROWS_PER_GROUP`` rows.

    Bulk data, rebuilt from the shards on a rerun (no fsync). Through our own file object: pyarrow leaves
    its handle open when a write fails (a full disk), keeping the deleted temp file's space."""
    n = 0
    with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:
        w = pq.ParquetWriter(f, schema, compression="zstd", write_statistics=False)
        try:
            buf: list[pa.Table] = []
            buffered = 0
            for t in tables:
                buf.append(t.cast(schema))
                n += t.num_rows
                buffered += t.num_rows
                if buffered >= _ROWS_PER_GROUP:
                    w.write_table(pa.concat_tables(buf).combine_chunks())
                    buf, buffered = [], 0
            if buf or n == 0:  # n == 0: one empty row group, as write_table of an empty table writes
                w.write_table(pa.concat_tables(buf).combine_chunks() if buf else schema.empty_table())
        finally:
            w.close()
    return n


def finalize(out: Path, plan: dict[str, Any], run_audits: bool = True, memory_limit: str = "2GB"
             ) -> dict[str, Any]:
    """Merge the per-shard manifests and quarantines, total the stats, run the audits.

    One shard at a time (memory does not grow with the corpus: bench/scale/finalize.py measures it):
    the manifest parts are streamed into ``manifest.parquet`` in shard order, the stats files'
    quarantined rows into ``quarantine.parquet``. ``memory_limit`` is the audits' DuckDB limit.
    Raises if a shard is unfinished or an audit finds rows (the audit rows are in ``audit.json``).
    """
    name, n = plan["recipe"]["name"], plan["n_shards"]
    todo = pending_shards(out, plan)
    if todo:
        raise RuntimeError(f"{out}: shards {todo[:10]} are not finished; rerun the shard writer")
    meta = {LINEAGE_KEY: json.dumps(lineage(plan), sort_keys=True)}
    _stream_parquet((pq.read_table(shard_paths(out, name, i)["manifest"]) for i in range(n)),
                    out / "manifest.parquet", MANIFEST_SCHEMA.with_metadata(meta))
    sums = {"samples_written": 0, "tar_bytes": 0}

    def quarantined() -> Iterator[pa.Table]:
        for i in range(n):
            s = json.loads(shard_paths(out, name, i)["stats"].read_text(encoding="utf-8"))
            for k in sums:
                sums[k] += s[k]
            q = s["quarantined"]
            yield pa.table({"shard": [s["shard"]] * len(q), "key": [r["key"] for r in q],
                            "reason": [r["reason"] for r in q], "detail": [r["detail"] for r in q]},
                           schema=QUARANTINE_SCHEMA)

    n_quarantined = _stream_parquet(quarantined(), out / "quarantine.parquet", QUARANTINE_SCHEMA)
    audit = audit_build(out, plan, memory_limit) if run_audits else {}
    totals = {
        "recipe": name, "build_id": plan["build_id"], "recipe_hash": plan["recipe_hash"], "n_shards": n,
        "samples_written": sums["samples_written"],
        "quarantined": n_quarantined, "tar_bytes": sums["tar_bytes"],
        "missing_sources": list(plan.get("missing_sources", [])),
        "samples": plan["stats"], "audit": {k: len(v) for k, v in audit.items()},
    }
    write_json(out / "stats.json", totals, indent=1)
    bad = {k: v for k, v in audit.items() if v}
    if bad:
        first = {k: v[:3] for k, v in bad.items()}
        raise AuditError(f"{out}: audits failed ({ {k: len(v) for k, v in bad.items()} }); first rows: {first}")
    return totals


def _member_tables(out: Path, name: str, n_shards: int) -> Iterator[pa.Table]:
    """Every member of every shard tar, one shard at a time (read from the tar headers)."""
    for i in range(n_shards):
        tar = shard_paths(out, name, i)["tar"]
        ms = read_tar_members(tar)
        yield pa.table({"tar": [tar.name] * len(ms), "name": [m[0] for m in ms], "off": [m[1] for m in ms],
                        "size": [m[2] for m in ms]}, schema=MEMBERS_SCHEMA)


def audit_build(out: Path, plan: dict[str, Any], memory_limit: str = "2GB") -> dict[str, list[list[Any]]]:
    """Run every audit query; returns ``{audit: offending rows}`` (all empty when the build is sound).

    The tar members go to a Parquet file in the build folder (view ``a_members``), not into memory;
    DuckDB runs within ``memory_limit``, spilling into the build folder (the joins over ~33M members
    at recipe 16m), and an out-of-memory is one ``ResourceLimit`` line."""
    out = Path(out)
    name = plan["recipe"]["name"]
    members = out / _MEMBERS
    try:
        _stream_parquet(_member_tables(out, name, plan["n_shards"]), members, MEMBERS_SCHEMA)
        run = SqlRunner.open(memory_limit, 2, out)
        run.prefix = "samples"
        try:
            con = run.con
            _create_lake_views(con, Path(plan["lake_root"]), list(plan["recipe"]["sources"]))
            for view, path in (("a_samples", out / "samples.parquet"), ("a_manifest", out / "manifest.parquet"),
                               ("a_quarantine", out / "quarantine.parquet"), ("a_members", members)):
                con.execute(view_ddl(view, "views/parquet_file", temp=True, path=path))
            leak_splits = Recipe.from_dict(plan["recipe"]).flat_leak_splits
            res = {a: [list(r) for r in run.query(a, leak_splits=leak_splits)] for a in AUDITS}
        except duckdb.OutOfMemoryException as exc:
            raise memory_error(exc, f"audits of {out}", memory_limit, out) from exc
        finally:
            run.close()
    finally:
        members.unlink(missing_ok=True)
    write_json(out / "audit.json", {k: [[str(x) for x in r] for r in v[:100]] for k, v in res.items()}, indent=1)
    return res


def build_shards(lake_root: str | Path, raw_root: str | Path, out_root: str | Path, recipe: Recipe | str,
                 workers: int = 4, lake_db: str | Path | None = None, allow_missing: Sequence[str] = ()
                 ) -> dict[str, Any]:
    """Plan, write every pending shard, finalize, and (if ``lake_db``) add the views; returns the totals."""
    out, plan = plan_build(lake_root, raw_root, out_root, recipe, workers=workers, allow_missing=allow_missing)
    write_shards(out, plan)
    totals = finalize(out, plan)
    if lake_db is not None:
        from xvlm.data.shards.views import write_shard_views

        write_shard_views(lake_db, out)
    return {**totals, "out": str(out)}


def load_build(out: str | Path) -> dict[str, Any]:
    plan = read_plan(Path(out))
    if plan is None:
        raise MissingInput(f"{out}: no samples.json; run plan_build first")
    return plan
