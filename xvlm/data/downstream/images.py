"""Image transforms for downstream fine-tuning and evaluation (reference §5.3, METHOD.md §7).

Evaluation: the reference's test transform, a square bicubic resize of the whole image (aspect ratio not
kept) + CLIP normalisation, so normalised box coordinates mean the same in the original image.
Training: retrieval uses RandomResizedCrop(scale 0.5-1); grounding uses the reference's box-preserving
random crop (the crop always contains the whole referred box) then a square resize. Horizontal flips are
left out on purpose: the expressions and captions say "left of" / "right of", which a flip would falsify
(the reference's ``careful_hflip`` exists for the same reason). RandAugment is left out for the same
short-run reasons as the debug recipe; add it here if long fine-tunes need it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF


def load_rgb(path: str | Path) -> Image.Image:
    """Decode as RGB (some COCO images are grayscale; every reference loader converts)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def _normalize(mean: Sequence[float], std: Sequence[float]) -> v2.Transform:
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def eval_transform(res: int, mean: Sequence[float], std: Sequence[float]) -> v2.Transform:
    """PIL image -> (3, res, res) normalised tensor, square bicubic resize (the reference's test transform)."""
    return v2.Compose([v2.Resize((res, res), interpolation=InterpolationMode.BICUBIC, antialias=True),
                       _normalize(mean, std)])


def retrieval_train_transform(res: int, mean: Sequence[float], std: Sequence[float]) -> v2.Transform:
    """RandomResizedCrop(res, scale 0.5-1, bicubic) + normalisation."""
    return v2.Compose([v2.RandomResizedCrop(res, scale=(0.5, 1.0), interpolation=InterpolationMode.BICUBIC,
                                            antialias=True), _normalize(mean, std)])


def box_preserving_crop(img: Image.Image, box: Sequence[float], res: int, mean: Sequence[float],
                        std: Sequence[float], rng: random.Random | None) -> tuple[Tensor, Tensor]:
    """Random crop that contains ``box`` (x, y, w, h pixels), square resize; returns (image, cxcywh target).

    Crop corners as the reference: x0 ~ U{0..floor(x)}, x1 ~ U{min(ceil(x+w), W)..W}, same for y.
    ``rng`` None -> no crop (the whole image). The target is normalised to the crop, so it is the box the
    model must predict on the resized square.
    """
    W, H = img.size
    x, y, w, h = (float(v) for v in box)
    if rng is not None:
        x0, y0 = rng.randint(0, math.floor(x)), rng.randint(0, math.floor(y))
        x1 = rng.randint(min(math.ceil(x + w), W), W)
        y1 = rng.randint(min(math.ceil(y + h), H), H)
    else:
        x0, y0, x1, y1 = 0, 0, W, H
    cw, ch = x1 - x0, y1 - y0
    crop = TF.resize(img.crop((x0, y0, x1, y1)), [res, res], interpolation=InterpolationMode.BICUBIC,
                     antialias=True)
    target = torch.tensor([(x - x0 + w / 2) / cw, (y - y0 + h / 2) / ch, w / cw, h / ch], dtype=torch.float32)
    return _normalize(mean, std)(crop), target.clamp(0.0, 1.0)
