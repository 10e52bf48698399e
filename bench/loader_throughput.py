"""Loader benchmark: decoded + augmented + batched samples per CPU-second of one process (= one worker).

Per source size (``--sizes``, default 640x480 = COCO / most web photos, 800x600 = VG-like, 1024x768) the
same photo-like JPEGs (``bench/photos.py``) are stored as the shards would store them (``--stored``:
``orig`` = original bytes, or a ``resize_max_side`` value re-encoded by the shard writer's own
``resize_jpeg``), and these loaders run on them, interleaved, order rotated every round, best of ``--repeat``:

- ``ours`` (image-text): webdataset tar stream -> ``parse_sample`` -> ``plan_image_text`` (RandomResizedCrop
  parameters from metadata) -> JPEG draft decode at the smallest sufficient scale -> crop + resize in one
  bicubic pass -> flip + RandAugment(2, 7) on the res x res PIL image -> uint8 CHW view -> ``stack_images``;
- ``ours_region``: the same on region samples (``plan_region``: anchor crop, box bookkeeping, flip with
  left/right swap, photometric RandAugment); 4 boxes per image;
- ``ours_collate`` / ``ours_region_collate``: the same plus the whole text side of the collate
  (tokenise, MLM masking, box targets: ``Collator``), which is what a worker really does per batch;
- ``reference`` (reference-style): per-file reads, full PIL decode + convert, torchvision RandomResizedCrop
  (bicubic) + flip + RandAugment(2, 7) + PILToTensor, ``default_collate``; run on the *same stored images*
  (``reference``) and on the original files (``reference_orig``: what a loader without resized shards reads).

Two clocks: the process's CPU time (``time.process_time``: the per-core cost, robust to other processes
competing for the cores; the headline figure) and wall time. Ratios are ours / reference on the same clock.

``--workers 1,2``: samples/s of the real ``build_loader`` (``PretrainStream`` with the text collate) with that
many DataLoader workers, wall clock and per worker CPU-second (the workers' CPU from ``getrusage(CHILDREN)``
after they are joined, plus the main process's).

    OMP_NUM_THREADS=1 .venv/bin/python bench/loader_throughput.py --n 64 --repeat 3 --stored orig,384
    OMP_NUM_THREADS=1 .venv/bin/python bench/loader_throughput.py --n 64 --sizes 640x480 --stored 384 --workers 0,1,2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import default_collate
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import photo_jpegs  # noqa: E402

from xvlm.data.augment import AugmentConfig, Augmenter, plan_image_text, plan_region  # noqa: E402
from xvlm.data.collate import Collator, MaskingConfig, stack_images  # noqa: E402
from xvlm.data.loader import DataConfig, build_loader, parse_sample  # noqa: E402
from xvlm.data.shards.images import resize_jpeg  # noqa: E402

CAPTIONS = ["a man riding a bike on the left side of a busy street", "a cat sitting next to a red cup",
            "two people walking in a park on a sunny day"]
WORDS = ["dog", "left window", "red car", "small tree", "person on the right", "white plate", "sign"]


def store(src: list[bytes], stored: str, quality: int = 90) -> list[bytes]:
    """The bytes a shard would hold: the originals, or the shard writer's ``resize_jpeg`` re-encode."""
    return src if stored == "orig" else [resize_jpeg(b, int(stored), quality)[0] for b in src]


def sample_meta(i: int, w: int, h: int) -> dict:
    """Captions + 4 region/object boxes inside the image (region samples need boxes)."""
    rng = random.Random(i)
    concepts = []
    for j in range(4):
        bw, bh = rng.uniform(0.1, 0.6) * w, rng.uniform(0.1, 0.6) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        concepts.append({"kind": "region" if j % 2 else "object", "text": WORDS[(i + j) % len(WORDS)],
                         "box": [round(x, 3), round(y, 3), round(bw, 3), round(bh, 3)]})
    return {"key": f"img_{i:05d}", "source": "bench", "width": w, "height": h, "captions": CAPTIONS,
            "concepts": concepts}


def write_shards(data: list[bytes], out: Path, n_shards: int = 1) -> list[str]:
    paths = []
    for s in range(n_shards):
        p = out / f"bench-{s:06d}.tar"
        with wds.TarWriter(str(p), mtime=0) as tw:
            for i in range(s, len(data), n_shards):
                w, h = Image.open(io.BytesIO(data[i])).size
                tw.write({"__key__": f"img_{i:05d}", "jpg": data[i], "json": json.dumps(sample_meta(i, w, h)).encode()})
        paths.append(str(p))
    return paths


def run_ours(shard: str, res: int, batch: int, kind: str = "image", collate: Collator | None = None) -> int:
    cfg = AugmentConfig(res=res)
    aug = Augmenter(cfg)
    plan = plan_image_text if kind == "image" else plan_region
    n, samples = 0, []

    def flush() -> None:
        if collate is not None:
            collate(samples)
        else:
            stack_images([s.image for s in samples])

    for i, s in enumerate(wds.DataPipeline(wds.SimpleShardList([shard]), wds.tarfile_to_samples())):
        rec = parse_sample(s)
        samples.append(aug(plan(rec, cfg, random.Random(i), i)))
        n += 1
        if len(samples) == batch:
            flush()
            samples = []
    if samples:
        flush()
    return n


def run_reference(paths: list[Path], res: int, batch: int) -> int:
    tf = T.Compose([T.RandomResizedCrop(res, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                    T.RandomHorizontalFlip(), T.RandAugment(2, 7), T.PILToTensor()])
    images = []
    for p in paths:
        with open(p, "rb") as f:
            img = Image.open(io.BytesIO(f.read())).convert("RGB")
        images.append(tf(img))
        if len(images) == batch:
            default_collate(images)
            images = []
    if images:
        default_collate(images)
    return len(paths)


def best_of(runs: dict[str, Callable[[], int]], repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """Best samples/s per run on the CPU clock and on the wall clock; rounds interleaved, order rotated."""
    wall, cpu = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
    names = list(runs)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            n = runs[name]()
            wall[name] = max(wall[name], n / (time.perf_counter() - t0))
            cpu[name] = max(cpu[name], n / max(time.process_time() - c0, 1e-9))
    return cpu, wall


def _cpu_s(pids: list[int]) -> float:
    """utime + stime of these processes so far (``/proc/<pid>/stat``, clock ticks)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def run_workers(shards: list[str], res: int, batch: int, workers: int, n_batches: int,
                region_prob: float = 0.0) -> dict[str, float]:
    """The real loader (``build_loader``, text collate included) with ``workers`` workers, in steady state.

    The clocks start after every worker has handed over its first batch (worker start-up, the tokenizer
    load and the shuffle buffer's first fill are one-off costs); CPU is the main process's plus each
    worker's, read from ``/proc`` while they run (``RUSAGE_CHILDREN`` only counts joined children).
    """
    cfg = DataConfig(shards=shards, image_res=res, batch_texts=batch, max_texts_per_image=1,
                     region_prob=region_prob, shuffle_buffer=32, num_workers=workers)
    loader = build_loader(cfg)
    it = iter(loader)
    for _ in range(max(1, workers)):  # warm-up: one batch from each worker
        next(it)
    pids = [os.getpid()] + [w.pid for w in getattr(it, "_workers", [])]
    c0, t0 = _cpu_s(pids), time.perf_counter()
    n = 0
    for _ in range(n_batches):
        n += int(next(it).batch.images.shape[0])
    wall, cpu = time.perf_counter() - t0, _cpu_s(pids) - c0
    it._shutdown_workers() if workers else None  # joins now (a generator-held iterator could linger)
    return {"workers": workers, "kind": "region" if region_prob else "image", "samples": n,
            "wall_samples_per_s": round(n / wall, 1), "samples_per_cpu_s": round(n / cpu, 1),
            "cpu_s_per_wall_s": round(cpu / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="images per source size")
    ap.add_argument("--sizes", default="640x480,800x600,1024x768")
    ap.add_argument("--stored", default="orig,384", help="comma list: orig and/or resize_max_side values")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="images per batch")
    ap.add_argument("--no-collate", action="store_true", help="skip the *_collate runs")
    ap.add_argument("--workers", default="", help="e.g. 0,1,2: also time build_loader with these worker counts")
    ap.add_argument("--worker-batches", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    collate = Collator(args.res, 40, MaskingConfig())
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        src = photo_jpegs(args.n, w, h)
        with tempfile.TemporaryDirectory() as d:
            dd = Path(d)
            files: dict[str, list[Path]] = {}
            shards: dict[str, list[str]] = {}
            for st in ["orig", *[s for s in args.stored.split(",") if s != "orig"]]:
                data = store(src, st)
                (dd / st).mkdir()
                files[st] = []
                for i, b in enumerate(data):
                    p = dd / st / f"img_{i:05d}.jpg"
                    p.write_bytes(b)
                    files[st].append(p)
                shards[st] = write_shards(data, dd / st, 2)
            half = {st: fs[0::2] for st, fs in files.items()}  # the images of shard 0, which the "ours" runs read
            runs: dict[str, Callable[[], int]] = {"reference_orig": lambda half=half: run_reference(half["orig"], args.res, args.batch)}
            for st in args.stored.split(","):
                one = shards[st][0]
                runs[f"ours@{st}"] = lambda one=one: run_ours(one, args.res, args.batch)
                runs[f"ours_region@{st}"] = lambda one=one: run_ours(one, args.res, args.batch, "region")
                if not args.no_collate:
                    runs[f"ours_collate@{st}"] = lambda one=one: run_ours(one, args.res, args.batch, collate=collate)
                    runs[f"ours_region_collate@{st}"] = lambda one=one: run_ours(one, args.res, args.batch, "region",
                                                                                 collate)
                if st != "orig":
                    runs[f"reference@{st}"] = lambda st=st, half=half: run_reference(half[st], args.res, args.batch)
            cpu, wall = best_of(runs, args.repeat)
            for st in args.stored.split(","):
                ref_same = cpu["reference_orig" if st == "orig" else f"reference@{st}"]
                row = {"size": size, "stored": st, "kb_per_image": round(sum(map(len, store(src, st))) / len(src) / 1e3, 1),
                       "cpu_samples_per_s": {k.split("@")[0]: round(v, 1) for k, v in cpu.items()
                                             if k.endswith("@" + st) or (k == "reference_orig")},
                       "wall_samples_per_s": {k.split("@")[0]: round(v, 1) for k, v in wall.items()
                                              if k.endswith("@" + st) or (k == "reference_orig")},
                       "cpu_ratio_vs_reference_same_images": round(cpu[f"ours@{st}"] / ref_same, 2),
                       "cpu_ratio_vs_reference_orig": round(cpu[f"ours@{st}"] / cpu["reference_orig"], 2),
                       "cpu_region_over_image": round(cpu[f"ours_region@{st}"] / cpu[f"ours@{st}"], 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if args.workers:
                st = args.stored.split(",")[-1]
                for k in (int(v) for v in args.workers.split(",")):
                    for rp in (0.0, 1.0):
                        print(json.dumps({"size": size, "stored": st, **run_workers(
                            shards[st], args.res, args.batch, k, args.worker_batches, rp)}), flush=True)
    print("\n| source | stored | KB/image | ours img-text /CPU-s | ours region /CPU-s | +text collate (img / region) "
          "| reference same images | reference on originals | ours / ref same | ours / ref orig |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["cpu_samples_per_s"]
        ref_same = c.get("reference", c["reference_orig"])
        print(f"| {r['size']} | {r['stored']} | {r['kb_per_image']} | {c['ours']} | {c['ours_region']} | "
              f"{c.get('ours_collate', '-')} / {c.get('ours_region_collate', '-')} | {ref_same} | "
              f"{c['reference_orig']} | {r['cpu_ratio_vs_reference_same_images']}x | {r['cpu_ratio_vs_reference_orig']}x |")


if __name__ == "__main__":
    main()
