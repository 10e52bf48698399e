"""Lake -> samples: the ``sql/samples`` queries, run in order on one DuckDB connection.

Steps (each a file in ``sql/samples``; their tables stay in the connection for the next step):

1. ``selected_images``  images of the recipe's sources            -> probe (Python: bytes, sha256, decode)
2. ``image_outcomes``   unreadable / leak / dedup, canonical key   (probe joined in)
3. ``caption_candidates``, ``concept_candidates``  texts moved to canonical samples, drops with reasons
4. ``sample_rows`` -> ``samples`` (with shard ids), ``removed``, ``dropped_texts``, ``text_counts``

Output (in ``out``): ``samples.parquet``, ``removed.parquet``, ``dropped_texts.parquet`` and
``samples.json`` (stats + plan), written last and atomically: its presence means the step is done.
Row invariants are checked before anything is written (images in = samples + removed; texts in =
kept + dropped), so a counting bug raises instead of losing rows.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from xvlm.data.lake.sqlrun import SqlRunner, limit_bytes, memory_error, view_ddl
from xvlm.data.shards.images import PROBE_SCHEMA, probe_images
from xvlm.data.shards.recipe import Recipe, build_id, recipe_hash
from xvlm.data.shards.writer import _crash_point
from xvlm.errors import BadInput, MissingInput
from xvlm.fsio import atomic_path, output_fault, write_json

LAKE_TABLES = ("images", "captions", "objects", "regions", "splits")
PLAN_FILE = "samples.json"
PROBE_FILE = "probe.parquet"  # the probe's results while the step runs (removed at its end)
_PROBE_BATCH = 1 << 17
_BYTES_PER_TEXT = 2048
"""DuckDB memory_limit per kept text of one part of ``sample_rows`` (:func:`_sample_rows`): DuckDB cannot
spill an aggregate with ORDER BY inside it (the per-sample caption and concept lists), so it is built in
key ranges of memory_limit / this many texts (1M at the default 2GB). Measured: bench/RESULTS.md, issue 15."""
_TEXTS_PER_PART: int | None = None  # a fixed part size instead (tests)


def lake_parts(lake_root: Path, table: str, sources: list[str] | None) -> list[str]:
    """Parquet files of ``table`` for ``sources`` (None: all), as ``<table>/source=<s>/*.parquet``."""
    root = lake_root / table
    dirs = sorted(root.glob("source=*")) if sources is None else [root / f"source={s}" for s in sources]
    return [str(f) for d in dirs for f in sorted(d.glob("*.parquet"))]


def source_in_lake(lake_root: Path, source: str) -> bool:
    """True when the lake holds ``source``: an ingest manifest or an ``images`` partition."""
    return (lake_root / "_manifest" / f"{source}.json").is_file() or bool(lake_parts(lake_root, "images", [source]))


def missing_sources(lake_root: str | Path, recipe: Recipe, allow_missing: Sequence[str] = ()) -> list[str]:
    """The recipe's sources absent from the lake, all of them named in ``allow_missing``; else
    ``MissingInput`` naming the first one that is not (a source silently left out would change the
    corpus without a word). ``allow_missing`` may only name sources of the recipe (``BadInput``)."""
    lake_root = Path(lake_root)
    stray = sorted(set(allow_missing) - set(recipe.sources))
    if stray:
        raise BadInput(f"--allow-missing {stray[0]}: not a source of recipe {recipe.name!r} "
                       f"(its sources: {', '.join(recipe.sources)})")
    absent = [s for s in recipe.sources if not source_in_lake(lake_root, s)]
    refused = [s for s in absent if s not in allow_missing]
    if refused:
        raise MissingInput(f"{lake_root}: recipe {recipe.name!r} source {refused[0]!r} is not in the lake; ingest it "
                           f"(xvlm ingest RAW_ROOT {lake_root} --source {refused[0]}) or pass "
                           f"--allow-missing {refused[0]} to build without it")
    if len(absent) == len(recipe.sources):
        raise MissingInput(f"{lake_root}: none of recipe {recipe.name!r}'s sources is in the lake "
                           f"({', '.join(recipe.sources)}); run the lake ingest first")
    return absent


def lake_fingerprints(lake_root: Path, sources: list[str]) -> dict[str, str]:
    """Per source read: the ingest's content fingerprint (``_manifest``), else a hash of the files;
    ``absent`` for a source the lake does not hold (a build without it has its own id)."""
    import hashlib

    out: dict[str, str] = {}
    # The splits of every source are read (leak lists), so their partitions are part of the identity.
    for s in sorted(set(sources) | set(_split_sources(lake_root))):
        m = lake_root / "_manifest" / f"{s}.json"
        if m.is_file():
            out[s] = json.loads(m.read_text(encoding="utf-8")).get("fingerprint", "")
            continue
        if not source_in_lake(lake_root, s) and not lake_parts(lake_root, "splits", [s]):
            out[s] = "absent"
            continue
        h = hashlib.sha256()
        for t in LAKE_TABLES:
            for f in lake_parts(lake_root, t, [s]):
                h.update(f.encode())
                h.update(Path(f).read_bytes())
        out[s] = h.hexdigest()
    return out


def _split_sources(lake_root: Path) -> list[str]:
    return sorted(d.name.split("=", 1)[1] for d in (lake_root / "splits").glob("source=*"))


def _create_lake_views(con: duckdb.DuckDBPyConnection, lake_root: Path, sources: list[str]) -> None:
    """Temp views ``l_<table>`` over the lake partitions read (``splits``: every source)."""
    for t in LAKE_TABLES:
        files = lake_parts(lake_root, t, None if t == "splits" else sources)
        if not files:
            raise MissingInput(f"{lake_root / t}: no Parquet partition for sources {sources}; "
                                    "run the lake ingest first")
        con.execute(view_ddl(f"l_{t}", "views/parquet_parts", temp=True, files=files))


ROW_GROUP_ROWS = 2048
"""Parquet row-group size of the plan tables. ``samples`` is sorted by shard and each shard task reads
its rows with a ``shard =`` filter that skips row groups by their min/max statistics, so small groups
keep that read near the shard's own rows (DuckDB's default of ~123K rows made a 5,000-sample shard of
the 4m recipe read ~24x its rows)."""


def _atomic_copy(run: SqlRunner, name: str, path: Path) -> None:
    with atomic_path(path, fsync=False) as tmp:  # bulk plan data, rebuilt on a rerun: no fsync (as before)
        # sql/samples/out_<table>.sql, whatever the runner's own prefix
        SqlRunner(run.con, prefix="samples").copy_parquet(f"out_{name}", tmp, row_group_size=ROW_GROUP_ROWS)


def _probe(run: SqlRunner, raw_root: Path, path: Path, workers: int, min_side: int) -> None:
    """Probe the selected images ``_PROBE_BATCH`` rows at a time into ``path``; ``probe`` becomes a view
    over it. Why in batches: at 16M images the rows fetched into Python at once (and the probe's table
    beside them) took ~1.5 KB an image, ~25 GB; this way memory holds one batch (bench/RESULTS.md, issue 15)."""
    _schema, batches = run.stream("probe_rows", batch_rows=_PROBE_BATCH)
    with pq.ParquetWriter(path, PROBE_SCHEMA) as w:
        for b in batches:
            cols = [b.column(i).to_pylist() for i in range(b.num_columns)]
            w.write_table(probe_images(raw_root, zip(*cols, strict=True), workers=workers, min_side=min_side))
    run.con.execute(view_ddl("probe", "views/parquet_parts", temp=True, files=str(path)))


def _sample_rows(run: SqlRunner, memory_limit: str) -> None:
    """Table ``sample_rows``, one key range of ``sample_parts`` at a time (same rows as one pass: a
    sample's texts all carry its key, so it lies in one range whole; ``tests/shards`` checks it). Why:
    the list aggregation of the whole corpus at once ran out of DuckDB's memory_limit at 16M images."""
    per_part = _TEXTS_PER_PART or max(1, limit_bytes(memory_limit) // _BYTES_PER_TEXT)
    parts = run.query("sample_parts", per_part=per_part) or [(None, None)]  # none: the empty table
    run.create("sample_rows", "sample_rows", lo=parts[0][0], hi=parts[0][1])
    for lo, hi in parts[1:]:
        run.insert("sample_rows", "sample_rows", lo=lo, hi=hi)


def read_plan(out: Path) -> dict[str, Any] | None:
    p = Path(out) / PLAN_FILE
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def build_samples(lake_root: str | Path, raw_root: str | Path, out: str | Path, recipe: Recipe,
                  workers: int = 4, memory_limit: str = "2GB", force: bool = False,
                  allow_missing: Sequence[str] = (), threads: int = 2) -> dict[str, Any]:
    """Write the samples of ``recipe`` into ``out``; returns the plan (stats, n_shards, build id).

    A no-op when ``out/samples.json`` exists with the same build id (unless ``force``). A recipe source
    absent from the lake is an error unless named in ``allow_missing`` (:func:`missing_sources`); the
    ones left out are recorded in the plan (``missing_sources``) and its stats.
    """
    lake_root, raw_root, out = Path(lake_root).resolve(), Path(raw_root).resolve(), Path(out)
    absent = missing_sources(lake_root, recipe, allow_missing)
    sources = list(recipe.sources)
    bid = build_id(recipe, lake_fingerprints(lake_root, sources))
    plan = read_plan(out)
    if plan is not None and plan.get("build_id") == bid and not force:
        return plan
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (output_fault(exc, out) or exc) from exc
    try:
        try:
            return _build_samples(lake_root, raw_root, out, recipe, workers, memory_limit, bid, absent, threads)
        except duckdb.OutOfMemoryException as exc:
            raise memory_error(exc, f"samples of recipe {recipe.name!r}", memory_limit, out) from exc
    except BaseException:
        if created:  # no half-made build folder from this call (a full disk, a kill is resumed by the plan)
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build_samples(lake_root: Path, raw_root: Path, out: Path, recipe: Recipe, workers: int, memory_limit: str,
                   bid: str, absent: list[str], threads: int = 2) -> dict[str, Any]:
    """:func:`build_samples` past the reuse check, in the build folder ``out``."""
    sources = list(recipe.sources)
    (out / PLAN_FILE).unlink(missing_ok=True)
    t0 = time.perf_counter()
    run = SqlRunner.open(memory_limit, threads, out)
    run.prefix = "samples"
    try:
        _create_lake_views(run.con, lake_root, [s for s in sources if s not in absent])
        n_sel = run.create("sel_images", "selected_images", sources=sources)
        _probe(run, raw_root, out / PROBE_FILE, workers, recipe.min_image_side)
        run.create("outcomes", "image_outcomes", leak_splits=recipe.flat_leak_splits)
        run.create("caption_cands", "caption_candidates", max_captions=recipe.max_captions_per_image)
        run.create("concept_cands", "concept_candidates", include_groups=recipe.include_groups,
                   max_concepts=recipe.max_concepts_per_image)
        _sample_rows(run, memory_limit)
        n_samples = run.query("sample_count")[0][0]
        n_shards = max(1, math.ceil(n_samples / recipe.shard_size))
        run.create("samples", "samples", n_shards=n_shards, seed=recipe.seed)
        n_removed = run.create("removed", "removed")
        run.create("dropped_texts", "dropped_texts")
        stats = {**_stats(run, recipe, n_sel, n_samples, n_removed), "missing_sources": absent}
        for t in ("samples", "removed", "dropped_texts"):
            _atomic_copy(run, t, out / f"{t}.parquet")
        sizes = dict(run.query("shard_sizes"))
    finally:
        run.close()
        (out / PROBE_FILE).unlink(missing_ok=True)
    _crash_point("plan", "before_plan")
    plan = {
        "recipe": recipe.to_dict(), "recipe_hash": recipe_hash(recipe), "build_id": bid,
        "lake_root": str(lake_root), "raw_root": str(raw_root), "n_shards": n_shards, "missing_sources": absent,
        "shard_sizes": [int(sizes.get(i, 0)) for i in range(n_shards)],
        "stats": stats,
    }
    write_json(out / PLAN_FILE, plan, indent=1)  # no timings inside: reruns give identical bytes
    return {**plan, "seconds": round(time.perf_counter() - t0, 3)}


def _stats(run: SqlRunner, recipe: Recipe, n_sel: int, n_samples: int, n_removed: int) -> dict[str, Any]:
    """Counts for the stats record, with the invariants checked (a mismatch is a bug: it raises)."""
    if n_sel != n_samples + n_removed:
        raise AssertionError(f"images: {n_sel} selected != {n_samples} samples + {n_removed} removed")
    removed = {r: int(n) for r, n in run.query("removed_by_reason")}
    by_source: dict[str, dict[str, int]] = {}
    for s, r, n in run.query("removed_by_source"):
        by_source.setdefault(s, {})[r] = int(n)
    texts: dict[str, dict[str, dict[str, int]]] = {}
    for entity, source, reason, n in run.query("text_counts"):
        texts.setdefault(entity, {}).setdefault(source, {})[reason or "kept"] = int(n)
    texts_in = dict(zip(("captions", "concepts"), run.query("texts_in")[0], strict=True))
    for entity, n_in in texts_in.items():
        n_out = sum(n for per in texts.get(entity, {}).values() for n in per.values())
        if n_in != n_out:
            raise AssertionError(f"{entity}: {n_in} rows in != {n_out} kept + dropped")
    leak_lists = {p: int(n) for p, n in run.query("leak_lists_found", leak_splits=recipe.flat_leak_splits)}
    kept = run.query("kept_texts")[0]
    return {
        "images_selected": n_sel, "samples": n_samples, "removed": removed,
        "removed_by_source": by_source, "leaks_removed": removed.get("leak", 0),
        "leak_lists_found": leak_lists,
        "leak_lists_missing": [p for p in recipe.flat_leak_splits if p not in leak_lists],
        "texts": texts, "captions_kept": int(kept[0] or 0), "concepts_kept": int(kept[1] or 0),
    }
