"""Time one samples-step query alone, at scale, on saved inputs (which query a stage's growth comes from).

``python -m bench.scale.query save --lake LAKE --out DIR`` runs the samples step of recipe 16m up to the
dedup (lake views, ``selected_images``, the synthetic probe of ``bench.scale.measure``) and saves the
inputs of ``image_outcomes`` as Parquet in DIR. ``python -m bench.scale.query time --dir DIR --sql FILE``
then runs FILE (an ``image_outcomes`` query: the current ``sql/samples/image_outcomes.sql`` or an older
one, e.g. ``git show REV:sql/samples/image_outcomes.sql > old.sql``) as ``CREATE TEMP TABLE outcomes``
on one connection set up as the samples step's (memory_limit, threads, spill folder in DIR) and prints
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

import duckdb

from bench.scale.measure import synthetic_probe
from xvlm.data.lake.sqlrun import SqlRunner, view_ddl
from xvlm.data.shards import samples
from xvlm.data.shards.recipe import load_recipe

RECIPE = "16m"


def save(lake: Path, out: Path) -> None:
    recipe = load_recipe(RECIPE)
    out.mkdir(parents=True, exist_ok=True)
    samples.probe_images = synthetic_probe
    run = SqlRunner.open("2GB", 2, out)
    run.prefix = "samples"
    samples._create_lake_views(run.con, lake, list(recipe.sources))
    run.create("sel_images", "selected_images", sources=list(recipe.sources))
    samples._probe(run, lake, out / "probe.parquet", 1, recipe.min_image_side)
    run.con.execute("COPY sel_images TO $p (FORMAT parquet)", {"p": str(out / "sel_images.parquet")})
    run.con.execute("COPY (SELECT * FROM l_splits) TO $p (FORMAT parquet)", {"p": str(out / "l_splits.parquet")})
    run.close()


def time_query(d: Path, sql: Path, threads: int, memory_limit: str, profile: Path | None) -> dict:
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = $m", {"m": memory_limit})
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = $t", {"t": str(d / "tmp")})
    # as in the step: sel_images a table in key order, the probe and the splits read from Parquet
    con.execute("CREATE TEMP TABLE sel_images AS SELECT * FROM read_parquet($p) ORDER BY image_key",
                {"p": str(d / "sel_images.parquet")})
    for t in ("probe", "l_splits"):
        con.execute(view_ddl(t, "views/parquet_parts", temp=True, files=str(d / f"{t}.parquet")))
    if profile:
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{profile}'")
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    con.execute(f"CREATE TEMP TABLE outcomes AS {sql.read_text()}",
                {"leak_splits": load_recipe(RECIPE).flat_leak_splits})
    wall, ru1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    if profile:
        con.execute("PRAGMA disable_profiling")
    fp = con.execute("SELECT count(*), sum(hash(COLUMNS(*))) FROM outcomes").fetchone()
    by = con.execute("SELECT reason, count(*) FROM outcomes GROUP BY ALL ORDER BY ALL").fetchall()
    return {"sql": str(sql), "threads": threads, "memory_limit": memory_limit, "wall_s": round(wall, 1),
            "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
            "peak_rss_mb": ru1.ru_maxrss // 1024, "rows": fp[0], "fingerprint": [str(v) for v in fp[1:]],
            "by_reason": by}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("--lake", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("time")
    t.add_argument("--dir", type=Path, required=True)
    t.add_argument("--sql", type=Path, default=Path(__file__).resolve().parents[2] / "sql/samples/image_outcomes.sql")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--memory-limit", default="2GB")
    t.add_argument("--profile", type=Path, default=None)
    a = ap.parse_args()
    if a.cmd == "save":
        save(a.lake, a.out)
    else:
        print(json.dumps(time_query(a.dir, a.sql, a.threads, a.memory_limit, a.profile)))


if __name__ == "__main__":
    main()
