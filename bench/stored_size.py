"""The visual and storage cost of a stored image size (issue 21): what ``resize_max_side`` gives up.

For each source size (``--sizes``) the photo-like JPEGs of ``bench/photos.py`` are stored as the shard writer
stores them (``orig`` = original bytes, else the writer's own ``resize_jpeg`` at quality 90), and per stored
size we report:

- ``kb``: JPEG bytes per sample (the image dominates a shard sample; the JSON is < 1 KB);
- ``write_ms``: CPU ms per image of the re-encode (``resize_jpeg``: draft decode, bicubic, encode), the part of
  shard writing the stored size adds (0 for ``orig``: bytes pass through);
- ``up224`` / ``up384``: share of RandomResizedCrop(scale 0.2-1) crops (``rrc_params``, 4,000 draws on the
  stored image) with a side shorter than the output, i.e. upsampled, at 224 (pre-training) and 384
  (fine-tuning) px;
- ``psnr`` / ``ssim``: 224 px crops of the stored image against the same crops (same normalised RRC
  parameters) of the original, both through the training path (``decode_crop_fast``); SSIM from
  scikit-image on the RGB crops.

    OMP_NUM_THREADS=1 .venv/bin/python bench/stored_size.py --n 32 --stored orig,512,384,320
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import photo_jpegs  # noqa: E402

from xvlm.data.augment import decode_crop_fast, rrc_params  # noqa: E402
from xvlm.data.shards.images import resize_jpeg  # noqa: E402


def upsampled_share(w: int, h: int, res: int, draws: int = 4000) -> float:
    g = torch.Generator().manual_seed(0)
    up = 0
    for _ in range(draws):
        _, _, cw, ch = rrc_params(h, w, (0.2, 1.0), g)
        up += cw < res or ch < res
    return up / draws


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--sizes", default="640x480,800x600,1024x768")
    ap.add_argument("--stored", default="orig,512,384,320")
    ap.add_argument("--crops", type=int, default=4, help="crops per image for PSNR/SSIM")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        src = photo_jpegs(args.n, w, h)
        g = torch.Generator().manual_seed(1)
        crops = [rrc_params(h, w, (0.2, 1.0), g) for _ in range(args.n * args.crops)]
        ref = [np.asarray(decode_crop_fast(src[i // args.crops], (w, h), c, 224)) for i, c in enumerate(crops)]
        for st in args.stored.split(","):
            c0 = time.process_time()
            data = src if st == "orig" else [resize_jpeg(b, int(st), 90)[0] for b in src]
            write_ms = 0.0 if st == "orig" else (time.process_time() - c0) / len(src) * 1e3
            sw, sh = Image.open(io.BytesIO(data[0])).size
            psnr, ssim = [], []
            for i, (left, top, cw, ch) in enumerate(crops):
                fx, fy = sw / w, sh / h  # the same normalised crop in the stored frame
                c = (round(left * fx), round(top * fy), max(1, round(cw * fx)), max(1, round(ch * fy)))
                got = np.asarray(decode_crop_fast(data[i // args.crops], (sw, sh), c, 224))
                psnr.append(peak_signal_noise_ratio(ref[i], got, data_range=255))
                ssim.append(structural_similarity(ref[i], got, channel_axis=2, data_range=255))
            row = {"source": size, "stored": st, "stored_wh": f"{sw}x{sh}",
                   "kb": round(sum(map(len, data)) / len(data) / 1e3, 1), "write_ms": round(write_ms, 2),
                   "up224": round(upsampled_share(sw, sh, 224), 3), "up384": round(upsampled_share(sw, sh, 384), 3),
                   "psnr": round(float(np.mean([p for p in psnr if np.isfinite(p)] or [float("inf")])), 2),
                   "ssim": round(float(np.mean(ssim)), 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| source | stored | stored px | KB/sample | re-encode ms/image | upsampled @224 | upsampled @384 "
          "| PSNR dB (224 crop vs original) | SSIM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['stored']} | {r['stored_wh']} | {r['kb']} | {r['write_ms']} | "
              f"{r['up224']:.1%} | {r['up384']:.1%} | {r['psnr']} | {r['ssim']} |")


if __name__ == "__main__":
    main()
