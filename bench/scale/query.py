"""Time one samples-step query alone, at scale, on saved inputs (which query a stage's growth comes from).

``python -m bench.scale.query save --lake LAKE --out DIR`` runs the samples step of recipe 16m up to the
dedup (lake views, ``selected_images``, the synthetic probe of ``bench.scale.measure``) and saves the
inputs of ``image_outcomes`` as Parquet in DIR. ``python -m bench.scale.query time --dir DIR``
then runs ``sql/samples/image_outcomes.sql`` (an older one with ``XVLM_SQL_DIR=<checkout of REV>/sql``,
e.g. ``git worktree add /tmp/old REV``) through ``SqlRunner.create`` as the samples step does, on a
connection set up as the step's (memory_limit, threads, spill folder in DIR), and prints
one JSON line: wall and CPU seconds of the query, peak RSS, the rows by reason and an order-independent
fingerprint of every column, so two versions can be checked for identical outcomes. ``--profile F``
writes DuckDB's JSON profile (operator timings, bytes spilled) to F.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.scale.measure import synthetic_probe
from xvlm.data.lake.sqlrun import SQL_ROOT, SqlRunner, view_ddl
from xvlm.data.shards import samples
from xvlm.data.shards.recipe import load_recipe

RECIPE = "16m"


def _write(rel: object, path: Path) -> None:
    """A DuckDB relation to Parquet, batch by batch (no SQL text: the relational API)."""
    reader = rel.fetch_record_batch(1 << 17)
    with pq.ParquetWriter(path, reader.schema) as w:
        for batch in reader:
            w.write_batch(batch)


def save(lake: Path, out: Path) -> None:
    recipe = load_recipe(RECIPE)
    out.mkdir(parents=True, exist_ok=True)
    run = SqlRunner.open("2GB", 2, out)
    run.prefix = "samples"
    real_probe, samples.probe_images = samples.probe_images, synthetic_probe
    try:
        samples._create_lake_views(run.con, lake, list(recipe.sources))
        run.create("sel_images", "selected_images", sources=list(recipe.sources))
        samples._probe(run, lake, out / "probe.parquet", 1, recipe.min_image_side)
        _write(run.con.table("sel_images"), out / "sel_images.parquet")
        _write(run.con.view("l_splits"), out / "l_splits.parquet")
    finally:
        samples.probe_images = real_probe
        run.close()


def time_query(d: Path, threads: int, memory_limit: str, profile: Path | None) -> dict:
    run = SqlRunner.open(memory_limit, threads, d / "tmp")
    run.prefix = "samples"
    # as in the step: sel_images a table in key order, the probe and the splits read from Parquet
    run.con.read_parquet(str(d / "sel_images.parquet")).order("image_key").create("sel_images")
    for t in ("probe", "l_splits"):
        run.con.execute(view_ddl(t, "views/parquet_parts", temp=True, files=str(d / f"{t}.parquet")))
    if profile:
        run.con.execute("PRAGMA enable_profiling = 'json'")
        run.con.execute("PRAGMA profiling_output = $p", {"p": str(profile)})
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    n = run.create("outcomes", "image_outcomes", leak_splits=load_recipe(RECIPE).flat_leak_splits)
    wall, ru1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    if profile:
        run.con.execute("PRAGMA disable_profiling")
    outcomes = run.con.table("outcomes")
    fp = outcomes.aggregate("sum(hash(COLUMNS(*)))").fetchall()[0]
    by = sorted(outcomes.aggregate("reason, count(*)", "reason").fetchall(), key=lambda r: (r[0] or "", r[1]))
    run.close()
    return {"sql": str(SQL_ROOT / "samples/image_outcomes.sql"), "threads": threads,
            "memory_limit": memory_limit, "wall_s": round(wall, 1),
            "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
            "peak_rss_mb": ru1.ru_maxrss // 1024, "rows": n, "fingerprint": [str(v) for v in fp],
            "by_reason": by}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("--lake", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("time")
    t.add_argument("--dir", type=Path, required=True)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--memory-limit", default="2GB")
    t.add_argument("--profile", type=Path, default=None)
    a = ap.parse_args()
    if a.cmd == "save":
        save(a.lake, a.out)
    else:
        print(json.dumps(time_query(a.dir, a.threads, a.memory_limit, a.profile)))


if __name__ == "__main__":
    main()
