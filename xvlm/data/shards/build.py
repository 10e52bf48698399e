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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from xvlm.data.lake.sqlrun import SqlRunner, view_ddl
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
               workers: int = 4, allow_missing: Sequence[str] = ()) -> tuple[Path, dict[str, Any]]:
    """Build (or reuse) the samples of ``recipe``; returns ``(build folder, plan)``.

    A recipe source absent from the lake is ``MissingInput`` naming it, before any folder is made,
    unless it is in ``allow_missing`` (then recorded in the plan, the stats and the manifest's lineage)."""
    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    missing_sources(lake_root, recipe, allow_missing)
    out = build_dir(out_root, recipe, lake_root)
    return out, build_samples(lake_root, raw_root, out, recipe, workers=workers, allow_missing=allow_missing)


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


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    # Bulk data, rebuilt from the shards on a rerun (no fsync, as before). Through our own file object:
    # pyarrow leaves its handle open when a write fails (a full disk), keeping the deleted temp file's space.
    with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd", write_statistics=False)


def finalize(out: Path, plan: dict[str, Any], run_audits: bool = True) -> dict[str, Any]:
    """Merge the per-shard manifests and quarantines, total the stats, run the audits.

    Raises if a shard is unfinished or an audit finds rows (the audit rows are in ``audit.json``).
    """
    name, n = plan["recipe"]["name"], plan["n_shards"]
    todo = pending_shards(out, plan)
    if todo:
        raise RuntimeError(f"{out}: shards {todo[:10]} are not finished; rerun the shard writer")
    stats = [json.loads(shard_paths(out, name, i)["stats"].read_text(encoding="utf-8")) for i in range(n)]
    parts = [pq.read_table(shard_paths(out, name, i)["manifest"]) for i in range(n)]
    manifest = pa.concat_tables(parts).cast(MANIFEST_SCHEMA) if parts else MANIFEST_SCHEMA.empty_table()
    _atomic_parquet(manifest.replace_schema_metadata({LINEAGE_KEY: json.dumps(lineage(plan), sort_keys=True)}),
                    out / "manifest.parquet")
    q = [(s["shard"], r["key"], r["reason"], r["detail"]) for s in stats for r in s["quarantined"]]
    _atomic_parquet(pa.table({"shard": [r[0] for r in q], "key": [r[1] for r in q], "reason": [r[2] for r in q],
                              "detail": [r[3] for r in q]}, schema=QUARANTINE_SCHEMA), out / "quarantine.parquet")
    audit = audit_build(out, plan) if run_audits else {}
    totals = {
        "recipe": name, "build_id": plan["build_id"], "recipe_hash": plan["recipe_hash"], "n_shards": n,
        "samples_written": sum(s["samples_written"] for s in stats),
        "quarantined": len(q), "tar_bytes": sum(s["tar_bytes"] for s in stats),
        "missing_sources": list(plan.get("missing_sources", [])),
        "samples": plan["stats"], "audit": {k: len(v) for k, v in audit.items()},
    }
    write_json(out / "stats.json", totals, indent=1)
    bad = {k: v for k, v in audit.items() if v}
    if bad:
        first = {k: v[:3] for k, v in bad.items()}
        raise AuditError(f"{out}: audits failed ({ {k: len(v) for k, v in bad.items()} }); first rows: {first}")
    return totals


def audit_build(out: Path, plan: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """Run every audit query; returns ``{audit: offending rows}`` (all empty when the build is sound)."""
    out = Path(out)
    name = plan["recipe"]["name"]
    members = [(p["tar"].name, m, o, s) for i in range(plan["n_shards"])
               for p in [shard_paths(out, name, i)] for m, o, s in read_tar_members(p["tar"])]
    con = duckdb.connect()
    try:
        _create_lake_views(con, Path(plan["lake_root"]), list(plan["recipe"]["sources"]))
        for view, file in (("a_samples", "samples"), ("a_manifest", "manifest"), ("a_quarantine", "quarantine")):
            con.execute(view_ddl(view, "views/parquet_file", temp=True, path=out / f"{file}.parquet"))
        con.register("a_members", pa.table({"tar": [m[0] for m in members], "name": [m[1] for m in members],
                                            "off": pa.array([m[2] for m in members], pa.int64()),
                                            "size": pa.array([m[3] for m in members], pa.int64())}))
        leak_splits = Recipe.from_dict(plan["recipe"]).flat_leak_splits
        run = SqlRunner(con, prefix="samples")
        res = {a: [list(r) for r in run.query(a, leak_splits=leak_splits)] for a in AUDITS}
    finally:
        con.close()
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
