"""Loader benchmark: decoded + augmented image-text samples/s in one process (= per worker).

Ours: webdataset tar stream -> parse_sample -> plan (RandomResizedCrop params from metadata) -> JPEG draft
decode at the smallest sufficient scale -> crop+resize in one PIL pass -> flip -> RandAugment(2, 7) on uint8.
Baseline (reference-style): per-file reads, full PIL decode + convert, torchvision RandomResizedCrop
(bicubic) + flip + RandAugment(2, 7) + ToTensor, the way X-VLM / ALBEF loaders do it.
Both run on the same JPEGs in the same invocation, alternating, best of --repeat.

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
from torchvision import transforms as T

from xvlm.data.augment import AugmentConfig, Augmenter, plan_image_text
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


def run_ours(shard: Path, res: int) -> int:
    cfg = AugmentConfig(res=res)
    aug = Augmenter(cfg)
    n = 0
    for i, s in enumerate(wds.DataPipeline(wds.SimpleShardList([str(shard)]), wds.tarfile_to_samples())):
        rec = parse_sample(s)
        plan = plan_image_text(rec, cfg, random.Random(i), i)
        aug(plan)
        n += 1
    return n


def run_reference(paths: list[Path], res: int) -> int:
    tf = T.Compose([T.RandomResizedCrop(res, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                    T.RandomHorizontalFlip(), T.RandAugment(2, 7), T.PILToTensor()])
    for p in paths:
        with open(p, "rb") as f:
            img = Image.open(io.BytesIO(f.read())).convert("RGB")
        tf(img)
    return len(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        paths = make_jpegs(Path(d) / "jpg", args.n, w, h)
        shard = Path(d) / "bench-000000.tar"
        write_shard(paths, shard, w, h)
        best = {"ours": 0.0, "reference": 0.0}
        for _ in range(args.repeat):
            for name, fn in (("reference", lambda: run_reference(paths, args.res)),
                             ("ours", lambda: run_ours(shard, args.res))):
                t0 = time.perf_counter()
                n = fn()
                best[name] = max(best[name], n / (time.perf_counter() - t0))
    print(json.dumps({"images": args.n, "size": args.size, "res": args.res,
                      "ours_samples_per_s": round(best["ours"], 1),
                      "reference_samples_per_s": round(best["reference"], 1),
                      "ratio": round(best["ours"] / best["reference"], 2)}))


if __name__ == "__main__":
    main()
