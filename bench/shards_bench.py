"""Benchmark: shard writing vs its baselines, in the same invocation (results in bench/RESULTS.md).

    .venv/bin/python bench/shards_bench.py [--n 2000] [--out /tmp/shards-bench]

Generates N JPEG photos (textured, 480x360, ~30-60 KB) in a COCO-like folder, a one-source lake over
them (one caption, one box each), plans the build once (SQL + probe, timed separately), then:

1. pass-through: our shard writer (read, sha256 check, JSON, tar member, manifest, stats), one
   thread and two (the flow's default runner), vs ``tar cf`` of the same image files.
   Ratio = tar time / our time (goal >= 0.5).
2. resize (max side 256, JPEG q90): our shard writer vs a bare Pillow loop doing the same
   decode (draft) -> resize -> encode per file. Ratio = our time / loop time (goal <= 1.3).

The page cache is warmed by reading every file before each timed step; each step runs `--repeat`
times and the best time is kept.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.shards.lakefix import cap, img, obj, write_lake  # noqa: E402
from xvlm.data.shards import Recipe, plan_build, write_shards  # noqa: E402
from xvlm.data.shards.images import resize_jpeg  # noqa: E402


def make_images(raw: Path, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    d = raw / "coco" / "train2017"
    d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:360, 0:480]
    rels = []
    for i in range(n):
        base = (np.sin(xx / (10 + i % 17)) * 60 + np.cos(yy / (7 + i % 11)) * 60 + 120)[..., None]
        arr = np.clip(base + rng.normal(0, 18, (360, 480, 3)) + rng.integers(0, 80, 3), 0, 255).astype(np.uint8)
        rel = f"coco/train2017/{i + 1:012d}.jpg"
        Image.fromarray(arr).save(raw / rel, quality=90)
        rels.append(rel)
    return rels


def warm(raw: Path, rels: list[str]) -> None:
    for r in rels:
        (raw / r).read_bytes()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default="/tmp/shards-bench")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    root = Path(a.out)
    shutil.rmtree(root, ignore_errors=True)
    raw, lake = root / "raw", root / "lake"
    t0 = time.perf_counter()
    rels = make_images(raw, a.n)
    keys = [f"coco_{i + 1}" for i in range(a.n)]
    write_lake(lake, {
        "images": [img(k, "coco", r, 480, 360, coco_id=i + 1) for i, (k, r) in enumerate(zip(keys, rels, strict=True))],
        "captions": [cap(k, "coco", str(i), f"a textured photo number {i}") for i, k in enumerate(keys)],
        "objects": [obj(k, "coco", str(i), (10, 20, 100, 80), "thing") for i, k in enumerate(keys)],
    }, sources=["coco", "karpathy"])
    gen_s = time.perf_counter() - t0
    mb = sum((raw / r).stat().st_size for r in rels) / 1e6

    recipe = Recipe(name="bench", sources=("coco",), shard_size=500, seed=1)
    warm(raw, rels)
    t0 = time.perf_counter()
    out, plan = plan_build(lake, raw, root / "out", recipe)
    plan_s = time.perf_counter() - t0

    def ours_pass(threads: int = 1) -> None:
        shutil.rmtree(out / "shards", ignore_errors=True)
        write_shards(out, plan, threads=threads)

    def tar_cf() -> None:
        subprocess.run(["tar", "cf", str(root / "baseline.tar"), "-C", str(raw), "coco"], check=True)

    warm(raw, rels)
    tar_s = best(tar_cf, a.repeat)
    warm(raw, rels)
    pass_s = best(ours_pass, a.repeat)
    warm(raw, rels)
    pass2_s = best(lambda: ours_pass(2), a.repeat)

    rplan = {**plan, "recipe": {**plan["recipe"], "resize_max_side": 256}}

    def ours_resize() -> None:
        shutil.rmtree(out / "shards", ignore_errors=True)
        write_shards(out, rplan)  # one thread, like the bare loop

    def bare_resize() -> None:
        for r in rels:
            data = (raw / r).read_bytes()
            buf = io.BytesIO()
            with Image.open(io.BytesIO(data)) as im:
                im.draft("RGB", (256, 192))
                im.convert("RGB").resize((256, 192), Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=90)

    assert resize_jpeg((raw / rels[0]).read_bytes(), 256, 90)[1:] == (256, 192)
    warm(raw, rels)
    bare_s = best(bare_resize, a.repeat)
    warm(raw, rels)
    res_s = best(ours_resize, a.repeat)

    result = {
        "n_images": a.n, "image_mb": round(mb, 1), "generate_s": round(gen_s, 2), "plan_s(sql+probe)": round(plan_s, 3),
        "tar_cf_s": round(tar_s, 3), "ours_pass_s": round(pass_s, 3),
        "pass_speed_vs_tar": round(tar_s / pass_s, 3),
        "ours_pass_2threads_s": round(pass2_s, 3), "pass_2threads_speed_vs_tar": round(tar_s / pass2_s, 3),
        "pass_incl_plan_speed_vs_tar": round(tar_s / (pass_s + plan_s), 3),
        "bare_pillow_resize_s": round(bare_s, 3), "ours_resize_s": round(res_s, 3),
        "resize_cost_vs_bare": round(res_s / bare_s, 3),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
