"""Benchmark: our VG ingest vs ``json.load`` + pyarrow on a VG-scale ``region_descriptions.json``.

Both sides run in the same invocation, each in its own subprocess so its peak RSS (``ru_maxrss`` of
that child, from ``os.wait4``) is its own:

- ``lake``: ``xvlm.data.lake.ingest_source(cfg, "vg")`` - sha256 + UTF-8 check of the inputs, DuckDB
  parses the top-level array once with the box rule, the stream is split into the regions partition
  (pyarrow writer) and the quarantine; then the other Parquet partitions and the manifest.
  Image-file checks are off (the generator writes no JPEGs; sizes come from image_data.json).
- ``baseline``: ``json.load`` of the same file, then the same regions columns as an Arrow table
  (``pa.table``), written to Parquet with ``pq.write_table``. No box rule, no quarantine: the baseline
  does strictly less work.

Usage: ``python bench/gen_vg_regions.py bench/out/vg_full`` then
``python bench/ingest_vg_regions.py bench/out/vg_full [--repeat 3] [--generic]``. The sides are
interleaved (the order alternates run by run) because the machine is shared and noisy; each run prints
a Markdown table row (wall time, CPU time = user + sys of the child, peak RSS) and the last line gives
the median ratios. ``--generic`` times the lake with ``fused_regions=False`` (the generic path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_lake(raw: Path, out: Path, fused: bool = True, split: bool = True) -> dict:
    from xvlm.data.lake import IngestConfig, ingest_source

    if not split:  # parse the region file whole (one DuckDB parse), as before the range split
        import importlib

        importlib.import_module("xvlm.data.lake.fused")._MIN_SPLIT_BYTES = 1 << 62

    cfg = IngestConfig(raw_root=raw, out=out, check_images=False, fused_regions=fused)
    t0 = time.perf_counter()
    stats = ingest_source(cfg, "vg", force=True)
    return {"seconds": time.perf_counter() - t0, "regions_loaded": stats["entities"]["regions"]["loaded"],
            "regions_in": stats["entities"]["regions"]["rows_in"]}


def run_baseline(raw: Path, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    with open(raw / "vg" / "region_descriptions.json", encoding="utf-8") as f:
        data = json.load(f)
    cols: dict[str, list] = {k: [] for k in ("image_key", "region_id", "x", "y", "w", "h", "phrase")}
    for img in data:
        key = f"vg_{img['id']}"
        for r in img["regions"]:
            cols["image_key"].append(key)
            cols["region_id"].append(r["region_id"])
            cols["x"].append(float(r["x"]))
            cols["y"].append(float(r["y"]))
            cols["w"].append(float(r["width"]))
            cols["h"].append(float(r["height"]))
            cols["phrase"].append(r["phrase"])
    table = pa.table(cols)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "regions.parquet", compression="zstd")
    return {"seconds": time.perf_counter() - t0, "regions_in": table.num_rows}


def _child(side: str, raw: Path, out: Path) -> dict:
    """Run one side in a fresh interpreter; returns its result plus its own peak RSS in MiB."""
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, __file__, "--child", side, str(raw), str(out)],
                            stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{side} failed with status {status}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    res["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description="VG regions ingest benchmark (lake vs json.load + pyarrow).")
    ap.add_argument("raw", type=Path, nargs="?", help="directory written by bench/gen_vg_regions.py")
    ap.add_argument("--out", type=Path, default=Path("bench/out/ingest"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--generic", action="store_true", help="lake side with fused_regions=False")
    ap.add_argument("--whole", action="store_true", help="lake side parses the region file whole (no ranges)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        side, raw, out = a.child
        res = run_baseline(Path(raw), Path(out)) if side == "baseline" else \
            run_lake(Path(raw), Path(out), fused=side != "lake-generic", split=side != "lake-whole")
        print(json.dumps(res))
        return
    size = (a.raw / "vg" / "region_descriptions.json").stat().st_size
    lake_side = "lake-generic" if a.generic else "lake-whole" if a.whole else "lake"
    speeds, mems, cpus = [], [], []
    for i in range(a.repeat):
        order = ("baseline", lake_side) if i % 2 == 0 else (lake_side, "baseline")
        res = {side: _child(side, a.raw, a.out / side) for side in order}
        base, lake = res["baseline"], res[lake_side]
        assert lake["regions_in"] == base["regions_in"], (lake, base)
        speed = base["seconds"] / lake["seconds"]
        mem = lake["peak_rss_mib"] / base["peak_rss_mib"]
        cpu = base["cpu_seconds"] / lake["cpu_seconds"]  # steadier than wall time on a shared machine
        speeds.append(speed)
        mems.append(mem)
        cpus.append(cpu)
        print(json.dumps({"run": i + 1, "first": order[0], "file_bytes": size, "regions": base["regions_in"],
                          "load_avg": os.getloadavg(), "baseline": base, "lake": lake,
                          "speedup": round(speed, 2), "cpu_ratio": round(cpu, 2), "memory_ratio": round(mem, 3)}))
        print(f"| {i + 1} ({order[0]} first) | baseline {base['seconds']:.1f} s (cpu {base['cpu_seconds']:.1f} s), "
              f"{base['peak_rss_mib']:.0f} MiB | {lake_side} {lake['seconds']:.1f} s (cpu {lake['cpu_seconds']:.1f} s), "
              f"{lake['peak_rss_mib']:.0f} MiB | {speed:.2f}x | {cpu:.2f}x | {mem:.3f} |", flush=True)
    print(f"median speedup {statistics.median(speeds):.2f}x, median CPU-time ratio {statistics.median(cpus):.2f}x, "
          f"median memory ratio {statistics.median(mems):.3f} "
          f"({a.repeat} runs, {size / 1e9:.2f} GB, lake side: {lake_side})")


if __name__ == "__main__":
    main()
