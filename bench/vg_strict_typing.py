"""Benchmark: what strict JSON typing costs the VG ingest, this tree's SQL against an earlier commit's.

The strict-typing checks live in the SQL (``sql/lake``), which the lake reads from ``XVLM_SQL_DIR``
when set, so the two sides run the SAME Python with different SQL trees: ``base`` is ``sql/`` as of
``--base`` (a git revision; the ``sql/lake`` files it lacks are added from this tree: the new macros,
unused by its queries), ``head`` is this tree's ``sql/``. Each run is a fresh interpreter per side (wall time of
``ingest_source(cfg, "vg", force=True)`` measured inside it, and its process CPU time; CPU of the
child = user + sys from ``os.wait4``, which adds start-up and imports), sides interleaved with the order alternating, on
one DuckDB thread (``threads=1``: the ratio is the per-core cost, not the second core's), image checks
off. Both sides must report the same region counts.

Usage::

    python bench/gen_vg_regions.py /tmp/vg10 --images 10808 --regions 540869
    python bench/vg_strict_typing.py /tmp/vg10 --base 1c78984 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_lake(raw: Path, out: Path) -> dict:
    import xvlm
    from xvlm.data.lake import IngestConfig, ingest_source

    assert Path(xvlm.__file__).resolve().parents[1] == ROOT, xvlm.__file__

    cfg = IngestConfig(raw_root=raw, out=out, check_images=False, threads=1)
    t0, c0 = time.perf_counter(), time.process_time()
    stats = ingest_source(cfg, "vg", force=True)
    reg = stats["entities"]["regions"]
    return {"seconds": time.perf_counter() - t0, "cpu_ingest": time.process_time() - c0,
            "rows_in": reg["rows_in"], "loaded": reg["loaded"]}


def sql_tree(rev: str, dest: Path) -> Path:
    """``sql/`` as of ``rev`` under ``dest``, plus the files of this tree's ``sql/lake`` it lacks (the
    macros; for an older ``rev``, queries this Python needs that the VG path does not time)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "sql"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for m in (ROOT / "sql" / "lake").glob("*.sql"):
        if not (dest / "sql" / "lake" / m.name).exists():
            shutil.copy(m, dest / "sql" / "lake" / m.name)
    return dest / "sql"


def child(sql_dir: Path, raw: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    # PYTHONPATH: this tree's xvlm, not whichever checkout the venv has installed
    env = {**os.environ, "XVLM_SQL_DIR": str(sql_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(raw), str(out)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"child with {sql_dir} failed ({status})")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description="VG ingest: strict-typing SQL of this tree vs an earlier revision")
    ap.add_argument("raw", type=Path, nargs="?")
    ap.add_argument("--base", default="HEAD", help="git revision whose sql/ is the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_lake(Path(a.child[0]), Path(a.child[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="vg-strict-") as tmp:
        out = a.out or Path(tmp) / "out"
        sides = {"base": sql_tree(a.base, Path(tmp)), "head": ROOT / "sql"}
        walls, cpus, ingest_cpus = [], [], []
        for i in range(a.repeat):
            order = ("base", "head") if i % 2 == 0 else ("head", "base")
            res = {s: child(sides[s], a.raw, out / s) for s in order}
            b, h = res["base"], res["head"]
            assert (b["rows_in"], b["loaded"]) == (h["rows_in"], h["loaded"]), res
            walls.append(b["seconds"] / h["seconds"])
            cpus.append(b["cpu_seconds"] / h["cpu_seconds"])
            ingest_cpus.append(b["cpu_ingest"] / h["cpu_ingest"])
            print(f"| {i + 1} ({order[0]} first) | {b['seconds']:.2f} s, {b['cpu_ingest']:.2f} s, {b['cpu_seconds']:.2f} s | "
                  f"{h['seconds']:.2f} s, {h['cpu_ingest']:.2f} s, {h['cpu_seconds']:.2f} s | {walls[-1]:.2f}x | "
                  f"{ingest_cpus[-1]:.2f}x | {cpus[-1]:.2f}x | load {os.getloadavg()[0]:.1f} |", flush=True)
        print(f"median speed-up {statistics.median(walls):.2f}x wall, {statistics.median(ingest_cpus):.2f}x ingest CPU, "
              f"{statistics.median(cpus):.2f}x child CPU ({a.repeat} runs, base {a.base}, "
              f"regions {h['rows_in']} in / {h['loaded']} loaded)")


if __name__ == "__main__":
    main()
