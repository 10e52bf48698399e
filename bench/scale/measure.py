"""Measure the data stages on generated sources: ingest per source, then the samples step of a recipe.

``python -m bench.scale.measure --raw DIR --lake LAKE [--sources coco ...] [--samples 16m] [--out JSON]``
runs each stage in its own child process (so peak RSS is that stage's alone) and records wall time,
CPU time (user + sys of the child and its threads; on a shared machine the honest figure, since wall
time also counts waiting for the CPU), peak RSS (``ru_maxrss`` of the child, the kernel's own
high-water mark) and disk (bytes the stage left in the lake / build folder).

Ingest runs with ``check_images=False`` (no image bytes at scale); OpenImages, whose box file has no
image sizes, reads the generator's synthetic size index (``openimages/image_sizes.csv``). The samples step is
``xvlm.data.shards.samples.build_samples`` (join, leak removal, dedup, concept selection, the shard
plan; no image writing), with the image probe replaced by a synthetic one (status ok, sha256 from the
lake row, so duplicate images are the ones the generator planted): every other line of it is the real
code path, including the fetch of the probe rows into Python.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa


def ingest_config(raw: Path, lake: Path, **over: Any):  # noqa: ANN201 - IngestConfig
    from xvlm.data.lake.config import IngestConfig, KarpathyPaths, OpenImagesPaths
    return IngestConfig(raw_root=raw, out=lake, flickr30k=None, check_images=False,
                        karpathy=KarpathyPaths(flickr30k=None, refcoco_plus=None),
                        openimages=OpenImagesPaths(image_sizes="openimages/image_sizes.csv"), **over)


def run_ingest(raw: Path, lake: Path, source: str, threshold: int | None = None,
               memory_limit: str | None = None, threads: int | None = None) -> dict[str, Any]:
    from xvlm.data.lake.ingest import ingest_source
    over: dict[str, Any] = {} if threshold is None else {"json_stream_threshold": threshold}
    if memory_limit:
        over["memory_limit"] = memory_limit
    if threads:
        over["threads"] = threads
    return ingest_source(ingest_config(raw, lake, **over), source, force=True)


def synthetic_probe(raw_root: str | Path, rows: Any, workers: int = 4, min_side: int = 1) -> pa.Table:
    """The probe's table without reading images: sizes as the lake says, sha256 = the lake's when it
    has one (web sources: img2dataset's), else a hash of the key."""
    import hashlib

    from xvlm.data.shards.images import PROBE_SCHEMA, STORED_AS_IS
    rows = list(rows)
    keys = [r[0] for r in rows]
    return pa.table({
        "image_key": keys, "status": ["ok"] * len(rows),
        "sha256": [hashlib.sha256(k.encode()).hexdigest() for k in keys],
        "file_width": [r[3] or 640 for r in rows], "file_height": [r[4] or 480 for r in rows],
        "nbytes": [150_000] * len(rows), "image_format": [STORED_AS_IS] * len(rows)}, schema=PROBE_SCHEMA)


def run_samples(raw: Path, lake: Path, recipe: str, out: Path, memory_limit: str | None = None,
                threads: int | None = None) -> dict[str, Any]:
    from xvlm.data.shards import samples
    from xvlm.data.shards.recipe import load_recipe
    samples.probe_images = synthetic_probe
    over: dict[str, Any] = {"memory_limit": memory_limit} if memory_limit else {}
    if threads:
        over["threads"] = threads
    plan = samples.build_samples(lake, raw, out, load_recipe(recipe), force=True, **over)
    return {"n_shards": plan["n_shards"], "stats": plan["stats"], "seconds": plan.get("seconds")}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def child(argv: list[str], rss_cap: int = 7 << 30, module: str = "bench.scale.measure") -> dict[str, Any]:
    """Run one stage in a child process (``python -m module --child argv``); wall (here), CPU
    (user+sys) and peak RSS (the child's own ``getrusage(RUSAGE_SELF)``: ``RUSAGE_CHILDREN`` would
    give the max over every child so far)."""
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    import psutil

    with subprocess.Popen([sys.executable, "-m", module, "--child", *argv], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        # a guard, not the measurement: the machine is shared, so a stage past rss_cap is stopped
        killed, seen = False, 0
        proc = psutil.Process(p.pid)
        while p.poll() is None:
            try:
                seen = max(seen, proc.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            if seen > rss_cap:
                p.kill()
                killed = True
            time.sleep(0.25)
        stdout, stderr = p.communicate()
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"wall_s": round(wall, 1), "rc": p.returncode}
    if killed:
        out["error"] = f"stopped by the bench's guard at RSS {seen / 2**20:.0f} MB > {rss_cap / 2**20:.0f} MB"
        out["peak_rss_mb"] = round(seen / 2**20)
        return out
    if p.returncode == 0:
        doc = json.loads(stdout.strip().splitlines()[-1])
        out.update(cpu_s=round(doc["cpu_s"], 1), peak_rss_mb=round(doc["peak_rss_kb"] / 1024), result=doc["result"])
    else:
        lines = stderr.strip().splitlines() or ["?"]
        out["error"] = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1])[:400]
        out["stderr_tail"] = stderr[-4000:]  # the whole message (DuckDB's last line is only its tuning hint)
    return out


def report(paths: list[Path]) -> str:
    """The cost-curve table: one row per stage, wall / CPU / peak RSS / disk at each scale, and the
    0.1 -> 1.0 growth of CPU time and peak RSS (the goal: at most 12x and 3x)."""
    runs: dict[str, dict[float, dict[str, Any]]] = {}
    for p in paths:
        for line in p.read_text().splitlines():
            if not line.startswith('{"') or '"stage"' not in line:  # a log: only measure's own JSON lines
                continue
            r = json.loads(line)
            runs.setdefault(r["stage"], {})[r["scale"]] = r  # a later run of a stage replaces an earlier one
    scales = sorted({s for v in runs.values() for s in v})
    head = ["stage"] + [f"{s:g}: wall s / CPU s / peak RSS MB / disk MB" for s in scales] + ["0.1->1 CPU", "0.1->1 RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, by in runs.items():
        cells = [stage]
        for s in scales:
            r = by.get(s)
            if r is None:
                cells.append("-")
            elif r.get("rc"):
                cells.append(f"FAILED ({r.get('error', '')[:60]})")
            else:
                cells.append(f"{r['wall_s']:g} / {r['cpu_s']:g} / {r['peak_rss_mb']} / {r.get('disk_mb', 0):g}")
        a, b = by.get(0.1), by.get(1.0)
        ok = a and b and not a.get("rc") and not b.get("rc")
        cells.append(f"{b['cpu_s'] / max(a['cpu_s'], 0.1):.1f}x" if ok else "-")
        cells.append(f"{b['peak_rss_mb'] / max(a['peak_rss_mb'], 1):.1f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path)
    ap.add_argument("--lake", type=Path)
    ap.add_argument("--report", nargs="+", type=Path, help="JSONL files of earlier runs: print the table")
    ap.add_argument("--sources", nargs="*", default=[])
    ap.add_argument("--samples", default=None, help="recipe whose samples step to measure")
    ap.add_argument("--build", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per stage here")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--json-stream-threshold", type=int, default=None,
                    help="IngestConfig.json_stream_threshold (e.g. 1e12: every file parsed whole, the old path)")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit of the stages (default 2GB)")
    ap.add_argument("--label", default="", help="appended to the stage name in the table")
    ap.add_argument("--threads", type=int, default=None,
                    help="DuckDB threads of the stages (default: theirs, 2); 1 = CPU time without parallel overhead")
    ap.add_argument("--sql-log", type=Path, default=None,
                    help="append each SQL query's name and seconds here (which query a stage's time goes to)")
    a = ap.parse_args()
    if a.child:  # inside the measured process
        if a.sql_log:
            import logging
            h = logging.FileHandler(a.sql_log)
            h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            sql_log = logging.getLogger("xvlm.data.lake.sqlrun")
            sql_log.addHandler(h)
            sql_log.setLevel(logging.DEBUG)
        if a.samples:
            res = run_samples(a.raw, a.lake, a.samples, a.build, a.memory_limit, a.threads)
        else:
            res = run_ingest(a.raw, a.lake, a.sources[0], a.json_stream_threshold, a.memory_limit, a.threads)
        ru = resource.getrusage(resource.RUSAGE_SELF)  # this process and its threads (DuckDB's too)
        print(json.dumps({"result": res, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_kb": ru.ru_maxrss}))
        return
    if a.report:
        print(report(a.report))
        return
    base = ["--raw", str(a.raw), "--lake", str(a.lake), *(["--sql-log", str(a.sql_log)] if a.sql_log else []),
            *(["--threads", str(a.threads)] if a.threads else [])]
    counts = a.raw / "counts.json"
    scale = json.loads(counts.read_text())["scale"] if counts.is_file() else None
    rows = []
    for s in a.sources:
        extra = [] if a.json_stream_threshold is None else ["--json-stream-threshold", str(a.json_stream_threshold)]
        extra += ["--memory-limit", a.memory_limit] if a.memory_limit else []
        r = {"stage": f"ingest {s}{a.label}", "scale": scale, **child([*base, "--sources", s, *extra])}
        r["disk_mb"] = round(sum(_du(a.lake / t / f"source={s}") for t in
                                 ("images", "captions", "regions", "objects", "splits", "quarantine")) / 1e6, 1)
        rows.append(r)
        print(json.dumps(r), flush=True)
    if a.samples:
        build = a.build or a.lake.parent / f"build-{a.samples}"
        from xvlm.data.lake.views import write_lake_db
        write_lake_db(a.lake)
        mem = ["--memory-limit", a.memory_limit] if a.memory_limit else []
        r = {"stage": f"samples {a.samples}{a.label}", "scale": scale,
             **child([*base, "--samples", a.samples, "--build", str(build), *mem])}
        r["disk_mb"] = round(_du(build) / 1e6, 1)
        rows.append(r)
        print(json.dumps(r), flush=True)
    if a.out:
        with a.out.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
