"""Shard writing rate per core at real image sizes, and the 16M projection (issue 15, item 5).

    nice -n 5 .venv/bin/python -m bench.scale.shardrate [--n 240] [--repeat 3] [--out /tmp/shardrate]

For each image size (640x480, 800x600, 1024x768: COCO/VG/web-like up to OpenImages/Objects365-like)
it generates ``--n`` photo-like JPEGs (:mod:`bench.photos`, q90), a one-source lake over them with the
real sizes, plans the build once, then runs ``--repeat`` interleaved rounds (order rotated) of:

- ``ours_<mode>``: ``write_shards`` in this process (1 core), for mode = ``orig`` (the recipes'
  ``resize_max_side: null``: bytes kept, sha256 check, tar) and ``r512`` / ``r384`` (resize to that
  max side, JPEG q90: :func:`~xvlm.data.shards.images.resize_jpeg`);
- ``bare_<mode>``, the baseline in the same run: ``orig``: read + sha256 + append to one file (the work
  the writer cannot skip); ``r512`` / ``r384``: a bare Pillow loop doing the same read -> draft decode ->
  RGB -> bicubic resize -> JPEG encode, nothing else;
- ``ours2p_<mode>``: the same shards split over 2 worker processes (a pre-started pool: no import cost
  timed), i.e. the per-core scaling the Dask runner relies on, measured with 1 and 2 processes.

Each step is timed as wall clock and CPU seconds (this process's ``getrusage``; the 2-process step sums
the workers' own CPU deltas). On the shared 2-core box the CPU figure is the load-robust one: samples per
CPU second = samples/s per core when a core is free. The projection (printed as JSON, copied into
bench/RESULTS.md) divides ``--samples`` (16.8M) by those rates; see ``project``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.photos import photo_jpegs  # noqa: E402
from tests.shards.lakefix import cap, img, obj, write_lake  # noqa: E402
from xvlm.data.shards import Recipe, plan_build, write_shards  # noqa: E402

SIZES = ((640, 480), (800, 600), (1024, 768))
MODES = {"orig": None, "r512": 512, "r384": 384}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker_write(out: str, plan: dict[str, Any], ids: list[int]) -> float:
    """In a pool process: write shards ``ids``; returns this process's CPU seconds for it."""
    c0 = cpu_s()
    write_shards(Path(out), plan, shard_ids=ids)
    return cpu_s() - c0


def _noop() -> int:
    return os.getpid()


def make_build(root: Path, w: int, h: int, n: int, shard_size: int) -> tuple[Path, Path, dict[str, Any]]:
    """``n`` photo JPEGs of ``w`` x ``h`` under ``root/raw``, a lake over them, the planned build."""
    raw, lake = root / "raw", root / "lake"
    d = raw / "coco" / "train2017"
    d.mkdir(parents=True, exist_ok=True)
    rels, keys = [], []
    for i, data in enumerate(photo_jpegs(n, w, h, seed=w)):
        rel = f"coco/train2017/{i + 1:012d}.jpg"
        (raw / rel).write_bytes(data)
        rels.append(rel)
        keys.append(f"coco_{i + 1}")
    write_lake(lake, {
        "images": [img(k, "coco", r, w, h, coco_id=i + 1) for i, (k, r) in enumerate(zip(keys, rels, strict=True))],
        # a typical COCO sample: 5 captions, 7 boxes
        "captions": [cap(k, "coco", f"{i}_{j}", f"a photo of thing {i} seen from angle {j}")
                     for i, k in enumerate(keys) for j in range(5)],
        "objects": [obj(k, "coco", f"{i}_{j}", (10 + j, 20, w / 4, h / 5), f"thing{j}")
                    for i, k in enumerate(keys) for j in range(7)],
    }, sources=["coco", "karpathy"])
    recipe = Recipe(name="rate", sources=("coco",), shard_size=shard_size, seed=1)
    out, plan = plan_build(lake, raw, root / "out", recipe)
    return raw, out, plan


def measure_size(root: Path, w: int, h: int, n: int, repeat: int, pool: ProcessPoolExecutor) -> dict[str, Any]:
    raw, out, plan = make_build(root, w, h, n, shard_size=max(1, n // 4))
    rels = [f"coco/train2017/{i + 1:012d}.jpg" for i in range(n)]
    in_mb = sum((raw / r).stat().st_size for r in rels) / 1e6
    plans = {m: {**plan, "recipe": {**plan["recipe"], "resize_max_side": s}} for m, s in MODES.items()}
    ids = list(range(plan["n_shards"]))
    sink = root / "bare.bin"

    def clean() -> None:
        shutil.rmtree(out / "shards", ignore_errors=True)
        sink.unlink(missing_ok=True)
        for r in rels:  # warm page cache: the inputs are read from memory, as on a re-read
            (raw / r).read_bytes()

    def bare(side: int | None) -> Callable[[], float | None]:
        def run() -> None:
            with open(sink, "wb") as f:
                for r in rels:
                    data = (raw / r).read_bytes()
                    if side is None:
                        hashlib.sha256(data).digest()
                        f.write(data)
                        continue
                    buf = io.BytesIO()
                    with Image.open(io.BytesIO(data)) as im:
                        s = min(1.0, side / max(im.size))
                        tw, th = max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))
                        im.draft("RGB", (tw, th))
                        rgb = im.convert("RGB")
                        if rgb.size != (tw, th):
                            rgb = rgb.resize((tw, th), Image.Resampling.BICUBIC)
                        rgb.save(buf, format="JPEG", quality=90)
                    f.write(buf.getvalue())
        return run

    def ours(m: str) -> Callable[[], None]:
        return lambda: write_shards(out, plans[m])

    def ours2p(m: str) -> Callable[[], float]:
        def run() -> float:
            futs = [pool.submit(_worker_write, str(out), plans[m], ids[k::2]) for k in range(2)]
            return sum(f.result() for f in futs)
        return run

    steps: dict[str, Callable[[], Any]] = {}
    for m, side in MODES.items():
        steps[f"bare_{m}"], steps[f"ours_{m}"], steps[f"ours2p_{m}"] = bare(side), ours(m), ours2p(m)
    names = list(steps)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    tar_mb: dict[str, float] = {}
    for r in range(repeat + 1):  # round 0: warm-up, not kept
        for name in names[r % len(names):] + names[:r % len(names)]:
            clean()
            c0, t0 = cpu_s(), time.perf_counter()
            got = steps[name]()
            dt, dc = time.perf_counter() - t0, cpu_s() - c0
            if name.startswith("ours_"):
                tar_mb[name[5:]] = sum(t.stat().st_size for t in (out / "shards").glob("*.tar")) / 1e6
            if r:
                wall[name].append(dt)
                cpu[name].append(got if name.startswith("ours2p") else dc)
        print(f"{w}x{h} round {r}: " + ", ".join(f"{k} {wall[k][-1]:.2f}s/{cpu[k][-1]:.2f}c"
                                                  for k in names if r), file=sys.stderr)
    res: dict[str, Any] = {"size": f"{w}x{h}", "n": n, "input_mb": round(in_mb, 1),
                           "input_kb_per_image": round(in_mb * 1e3 / n, 1)}
    for m in MODES:
        b, o, o2 = (statistics.median(cpu[f"{k}_{m}"]) for k in ("bare", "ours", "ours2p"))
        bw, ow, o2w = (statistics.median(wall[f"{k}_{m}"]) for k in ("bare", "ours", "ours2p"))
        res[m] = {
            "ours_samples_per_cpu_s": round(n / o, 1), "bare_samples_per_cpu_s": round(n / b, 1),
            "tar_kb_per_sample": round(tar_mb[m] * 1e3 / n, 1),
            "ours_vs_bare_cost_cpu": round(o / b, 3), "ours_vs_bare_cost_wall": round(ow / bw, 3),
            "ratio_rounds_cpu": [round(x / y, 3) for x, y in zip(cpu[f"ours_{m}"], cpu[f"bare_{m}"], strict=True)],
            "ours_1p_samples_per_s_wall": round(n / ow, 1), "ours_2p_samples_per_s_wall": round(n / o2w, 1),
            "ours_2p_samples_per_cpu_s": round(n / o2, 1),
            "speedup_2p_wall": round(ow / o2w, 2), "cpu_per_sample_2p_vs_1p": round(o2 / o, 3),
        }
    clean()
    shutil.rmtree(root, ignore_errors=True)
    return res


def project(sizes: list[dict[str, Any]], samples: float, cores: int, machines: list[int],
            disk_gbps: float, net_gbps: float, efficiency: float) -> dict[str, Any]:
    """Wall time of writing ``samples`` shards' samples, per mode and image size.

    CPU bound: ``samples / (rate per core x cores x efficiency)``; I/O bound: every byte is read once
    from the raw images and written once into a shard: ``samples x (in + out bytes) / bandwidth``
    (``disk_gbps`` for one machine on local disks, this box included; ``net_gbps`` per machine for a cluster on shared
    storage, whose aggregate bandwidth is assumed to scale with N: a parallel file system / object store,
    not one NFS server). The projection is the larger of the two."""
    proj: dict[str, Any] = {}
    for s in sizes:
        for m in MODES:
            rate = s[m]["ours_samples_per_cpu_s"]
            in_b, out_b = s["input_kb_per_image"] * 1e3, s[m]["tar_kb_per_sample"] * 1e3
            io_h = samples * (in_b + out_b) / (disk_gbps * 1e9) / 3600
            box_h = samples / (rate * 2 * efficiency) / 3600
            per: dict[str, Any] = {"box_2cores_h": max(box_h, io_h), "box_2cores_bound": "cpu" if box_h >= io_h else "io"}
            cpu_h = samples / (rate * cores * efficiency) / 3600
            per[f"one_{cores}core_h"] = max(cpu_h, io_h)
            per[f"one_{cores}core_bound"] = "cpu" if cpu_h >= io_h else "io"
            for nm in machines:
                c = cpu_h / nm
                io = samples * (in_b + out_b) / (net_gbps * 1e9 * nm) / 3600
                per[f"dask_{nm}x{cores}_h"] = max(c, io)
                per[f"dask_{nm}x{cores}_bound"] = "cpu" if c >= io else "io"
            per["output_tb"] = samples * out_b / 1e12
            proj[f"{s['size']}/{m}"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in per.items()}
    return proj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=240, help="images per size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/shardrate"))
    ap.add_argument("--samples", type=float, default=16.8e6)
    ap.add_argument("--cores", type=int, default=32)
    ap.add_argument("--machines", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--disk-gbps", type=float, default=1.0, help="local disk GB/s (read + write share it)")
    ap.add_argument("--net-gbps", type=float, default=1.25, help="per machine GB/s to shared storage (10 GbE)")
    ap.add_argument("--efficiency", type=float, default=None,
                    help="per-core efficiency at full load (default: the measured CPU/sample of 1 vs 2 processes)")
    ap.add_argument("--from-json", type=Path, help="re-project the measurements of an earlier run's output")
    a = ap.parse_args()
    load0 = os.getloadavg()
    if a.from_json:
        prev = json.loads(a.from_json.read_text())
        sizes, load0 = prev["sizes"], tuple(prev["load_start"])
    else:
        shutil.rmtree(a.out, ignore_errors=True)
        with ProcessPoolExecutor(max_workers=2) as pool:
            for f in [pool.submit(_noop) for _ in range(8)]:  # start both workers before any timing
                f.result()
            sizes = [measure_size(a.out / f"{w}x{h}", w, h, a.n, a.repeat, pool) for w, h in SIZES]
    eff = a.efficiency or min(1.0, statistics.median(1 / s[m]["cpu_per_sample_2p_vs_1p"] for s in sizes for m in MODES))
    result = {"load_start": [round(x, 1) for x in load0], "load_end": [round(x, 1) for x in os.getloadavg()],
              "sizes": sizes, "assumptions": {"samples": a.samples, "cores": a.cores, "disk_gbps": a.disk_gbps,
                                              "net_gbps_per_machine": a.net_gbps, "efficiency": round(eff, 3)},
              "projection": project(sizes, a.samples, a.cores, a.machines, a.disk_gbps, a.net_gbps, eff)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
