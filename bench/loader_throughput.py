"""Loader benchmark: decoded + augmented + batched image-text samples/s in one process (= per worker).

Ours: webdataset tar stream -> parse_sample -> plan (RandomResizedCrop params from metadata) -> JPEG draft
decode at the smallest sufficient scale -> crop+resize in one PIL pass -> flip + RandAugment(2, 7) on the
res x res PIL image -> uint8 CHW view -> ``stack_images`` (the collate's channels-last batch).
Baselines (reference-style), per-file reads, full PIL decode + convert, torchvision RandomResizedCrop
(bicubic) + flip + RandAugment(2, 7), batched by ``default_collate`` (what a DataLoader does):

- ``reference``: + PILToTensor (uint8 out, like ours: the lighter, stricter baseline);
- ``reference_norm``: + ToTensor + Normalize (float out), as the X-VLM / ALBEF loaders do in the workers;
  ours normalises the uint8 batch on the training device instead (``collate.normalize_images``).

Batching is timed on every side because the HWC -> CHW copy can happen there rather than per sample.
Both run on the same JPEGs in the same invocation, alternating, best of --repeat. Two clocks: wall time,
and the process's CPU time (``time.process_time``), which is the per-worker cost and far less sensitive to
other processes competing for the cores; on a quiet machine the two agree.

    .venv/bin/python bench/loader_throughput.py --n 96 --size 1024x768 --res 224 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import default_collate
from torchvision import transforms as T

from xvlm.data.augment import AugmentConfig, Augmenter, plan_image_text
from xvlm.data.collate import stack_images
from xvlm.data.loader import parse_sample


def make_jpegs(out: Path, n: int, w: int, h: int) -> list[Path]:
    """Photo-like JPEGs (smooth gradients + texture + noise), quality 90."""
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(n):
        f = rng.uniform(0.005, 0.03, 3)
        img = np.stack([127 + 100 * np.sin(xx * f[c] + yy * f[(c + 1) % 3] + i) for c in range(3)], -1)
        img += rng.normal(0, 12, img.shape)
        p = out / f"img_{i:05d}.jpg"
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def write_shard(paths: list[Path], shard: Path, w: int, h: int) -> None:
    with wds.TarWriter(str(shard), mtime=0) as tw:
        for p in paths:
            meta = {"width": w, "height": h, "captions": ["a photo of a textured pattern"], "concepts": []}
            tw.write({"__key__": p.stem, "jpg": p.read_bytes(), "json": json.dumps(meta).encode()})


def run_ours(shard: Path, res: int, batch: int) -> int:
    cfg = AugmentConfig(res=res)
    aug = Augmenter(cfg)
    n, images = 0, []
    for i, s in enumerate(wds.DataPipeline(wds.SimpleShardList([str(shard)]), wds.tarfile_to_samples())):
        rec = parse_sample(s)
        plan = plan_image_text(rec, cfg, random.Random(i), i)
        images.append(aug(plan).image)
        n += 1
        if len(images) == batch:
            stack_images(images)
            images = []
    if images:
        stack_images(images)
    return n


def run_reference(paths: list[Path], res: int, batch: int, normalize: bool = False) -> int:
    tail = ([T.ToTensor(), T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))]
            if normalize else [T.PILToTensor()])
    tf = T.Compose([T.RandomResizedCrop(res, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                    T.RandomHorizontalFlip(), T.RandAugment(2, 7), *tail])
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="images per stacked batch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        paths = make_jpegs(Path(d) / "jpg", args.n, w, h)
        shard = Path(d) / "bench-000000.tar"
        write_shard(paths, shard, w, h)
        runs = {"reference": lambda: run_reference(paths, args.res, args.batch),
                "ours": lambda: run_ours(shard, args.res, args.batch),
                "reference_norm": lambda: run_reference(paths, args.res, args.batch, normalize=True)}
        wall = dict.fromkeys(runs, 0.0)
        cpu = dict.fromkeys(runs, 0.0)
        for r in range(args.repeat):
            names = list(runs)[r % 3:] + list(runs)[:r % 3]  # rotate the order every round
            for name in names:
                t0, c0 = time.perf_counter(), time.process_time()
                n = runs[name]()
                wall[name] = max(wall[name], n / (time.perf_counter() - t0))
                cpu[name] = max(cpu[name], n / max(time.process_time() - c0, 1e-9))
    out = {"images": args.n, "size": args.size, "res": args.res, "batch": args.batch, "repeat": args.repeat}
    for clock, best in (("wall", wall), ("cpu", cpu)):
        out[f"{clock}_samples_per_s"] = {k: round(v, 1) for k, v in best.items()}
        out[f"{clock}_ratio"] = round(best["ours"] / best["reference"], 2)
        out[f"{clock}_ratio_vs_norm"] = round(best["ours"] / best["reference_norm"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
