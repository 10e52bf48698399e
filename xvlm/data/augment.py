"""Image augmentation for pre-training, split into a cheap *plan* and an *execute* step.

Why two steps: everything that decides which texts a sample contributes (anchor box, crop, flip, which
boxes stay visible) depends only on the record's metadata (size, boxes, texts), not on pixels. Planning
without decoding lets the loader (1) choose a JPEG draft scale from the crop before decoding and
(2) fast-forward to a saved position on resume by planning, not decoding, the skipped samples.

- Image-text samples: RandomResizedCrop(res, scale 0.2-1, bicubic), horizontal flip, RandAugment(N=2, M=7).
- Region samples (METHOD.md §4): a random anchor box; a random crop that fully contains it; flip with
  p = 0.5 that swaps "left"/"right" in every text; square resize to res x res; keep other boxes whose
  visible area is > 50% of their area (clipped to the crop); at most ``max_texts`` texts including the
  whole-image caption; photometric-only RandAugment.

Box geometry goes through torchvision v2 (``tv_tensors.BoundingBoxes`` with ``resized_crop``,
``clamp_bounding_boxes``, ``horizontal_flip``); crop parameters for image-text samples come from
``v2.RandomResizedCrop.make_params``.
"""

from __future__ import annotations

import io
import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from PIL import Image, ImageFile
from torchvision import tv_tensors
from torchvision.ops import box_area
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from xvlm.data.collate import ImageSample, TextSample, clean_caption, swap_left_right

if TYPE_CHECKING:  # runtime import would be circular (the loader imports this module)
    from xvlm.data.loader.records import ImageRecord

log = logging.getLogger(__name__)

SampleKind = Literal["image", "region"]


class PhotometricRandAugment(v2.RandAugment):
    """RandAugment restricted to colour ops: a geometric op would move pixels away from the boxes."""

    _AUGMENTATION_SPACE = {k: v for k, v in v2.RandAugment._AUGMENTATION_SPACE.items()
                           if k not in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")}


@dataclass
class SamplePlan:
    """Everything random about one sample except the RandAugment draw (seeded by ``seed``)."""

    record: ImageRecord
    kind: SampleKind
    crop: tuple[int, int, int, int]  # (left, top, width, height) in the stored image's pixels
    flip: bool
    texts: list[TextSample]  # boxes already in the res x res output frame, after crop/flip
    seed: int


@dataclass(frozen=True)
class AugmentConfig:
    res: int = 224
    scale: tuple[float, float] = (0.2, 1.0)  # RandomResizedCrop scale, image-text samples
    randaug_n: int = 2
    randaug_m: int = 7
    max_texts: int = 5  # texts per region image, including the whole-image caption
    min_visible: float = 0.5  # keep a non-anchor box when more than this share of its area is visible
    max_words: int = 40
    draft: bool = True  # JPEG draft-mode decoding when the crop is >= 2x the output size
    randaugment: bool = True


# --------------------------------------------------------------------------------------------------------
# Planning (metadata only)
# --------------------------------------------------------------------------------------------------------


def plan_image_text(rec: ImageRecord, cfg: AugmentConfig, rng: random.Random, seed: int) -> SamplePlan | None:
    """One random caption, RandomResizedCrop parameters, flip (swapping left/right in the caption)."""
    captions = [c for c in (clean_caption(c, cfg.max_words) for c in rec.captions) if c]
    if not captions:
        return None
    text = rng.choice(captions)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # CPU generator only: CUDA RNG untouched
        dummy = tv_tensors.Image(torch.empty(1, 1, 1, dtype=torch.uint8).expand(1, rec.height, rec.width))
        p = v2.RandomResizedCrop(cfg.res, scale=cfg.scale).make_params([dummy])
    flip = rng.random() < 0.5
    if flip:
        text = swap_left_right(text)
    return SamplePlan(rec, "image", (p["left"], p["top"], p["width"], p["height"]), flip,
                      [TextSample(text, None, False)], seed)


def plan_region(rec: ImageRecord, cfg: AugmentConfig, rng: random.Random, seed: int) -> SamplePlan | None:
    """Anchor box, containing crop, flip, visible boxes and at most ``max_texts`` texts (METHOD.md §4)."""
    texts = [_concept_text(c.text, c.attributes, cfg.max_words, rng) for c in rec.concepts]
    usable = [i for i, t in enumerate(texts) if t]
    if not usable:
        return None
    anchor = rng.choice(usable)
    x, y, w, h = rec.concepts[anchor].box
    # crop edges drawn independently on each side of the anchor (reference's region crop)
    left, top = rng.randint(0, math.floor(x)), rng.randint(0, math.floor(y))
    right = rng.randint(min(math.ceil(x + w), rec.width), rec.width)
    bottom = rng.randint(min(math.ceil(y + h), rec.height), rec.height)
    cw, ch = right - left, bottom - top
    flip = rng.random() < 0.5

    boxes = tv_tensors.BoundingBoxes(torch.tensor([c.box for c in rec.concepts], dtype=torch.float64),
                                     format="XYWH", canvas_size=(rec.height, rec.width), clamping_mode=None)
    moved = TF.resized_crop(boxes, top, left, ch, cw, size=[cfg.res, cfg.res])  # not clamped yet
    clamped = TF.clamp_bounding_boxes(moved, clamping_mode="hard")
    # the resize scales both axes uniformly per axis, so area ratios equal those in the crop frame
    full = box_area(TF.convert_bounding_box_format(moved, new_format="XYXY").as_subclass(torch.Tensor))
    vis = box_area(TF.convert_bounding_box_format(clamped, new_format="XYXY").as_subclass(torch.Tensor))
    visible = (vis / full.clamp(min=1e-6)) > cfg.min_visible + 1e-6  # strict ">", robust to rounding
    if flip:
        clamped = TF.horizontal_flip(clamped)
    out_boxes = clamped.as_subclass(torch.Tensor).tolist()

    items: list[TextSample] = []
    if rec.captions:
        caps = [c for c in (clean_caption(c, cfg.max_words) for c in rec.captions) if c]
        if caps:
            items.append(TextSample(rng.choice(caps), None, False))
    others = [i for i in usable if i != anchor and bool(visible[i]) and out_boxes[i][2] > 0
              and out_boxes[i][3] > 0]
    rng.shuffle(others)
    picked = [anchor] + others[: max(0, cfg.max_texts - len(items) - 1)]
    items = [TextSample(texts[i], tuple(out_boxes[i]), True) for i in picked] + items  # anchor first
    if flip:
        items = [TextSample(swap_left_right(t.text), t.box, t.is_region) for t in items]
    return SamplePlan(rec, "region", (left, top, cw, ch), flip, items[: cfg.max_texts], seed)


def _concept_text(text: str, attributes: tuple[str, ...], max_words: int, rng: random.Random) -> str:
    """Object text = random attribute (when the record has any) + label: "closed window" (METHOD.md §4)."""
    if attributes:
        text = f"{rng.choice(attributes)} {text}"
    return clean_caption(text, max_words)


# --------------------------------------------------------------------------------------------------------
# Execution (decode + pixels)
# --------------------------------------------------------------------------------------------------------


def decode_crop(jpeg: bytes, size: tuple[int, int], crop: tuple[int, int, int, int], res: int,
                draft: bool = True, key: str = "") -> Image.Image:
    """Decode, crop and resize to res x res (bicubic) in one pass, at reduced size when possible.

    Pillow's draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling: the work shrinks with
    the pixel count). We request the smallest scale at which the crop still has >= res pixels per side, so
    the output never comes from an upsampled crop that full decoding would not have upsampled.
    """
    left, top, cw, ch = crop
    img = Image.open(io.BytesIO(jpeg))
    if draft and img.format == "JPEG":
        s = max(res / cw, res / ch)
        if s <= 0.5:
            img.draft("RGB", (math.ceil(size[0] * s), math.ceil(size[1] * s)))
    fx, fy = img.size[0] / size[0], img.size[1] / size[1]
    try:
        img.load()
    except OSError as e:  # truncated file: decode what is there, count it, never silently
        log.warning("sample %s: truncated JPEG (%s); using the decodable part", key, e)
        ImageFile.LOAD_TRUNCATED_IMAGES, old = True, ImageFile.LOAD_TRUNCATED_IMAGES
        try:
            img = Image.open(io.BytesIO(jpeg))
            img.load()
            fx, fy = img.size[0] / size[0], img.size[1] / size[1]
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old
    if img.mode != "RGB":
        img = img.convert("RGB")
    box = (left * fx, top * fy, (left + cw) * fx, (top + ch) * fy)
    # reducing_gap: a cheap integer box-reduce first, then bicubic over >= 3x the output (Pillow docs)
    return img.resize((res, res), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


class Augmenter:
    """Executes plans: decode at draft scale, crop+resize, flip, RandAugment; returns ``ImageSample``.

    Flip and RandAugment run on the res x res PIL image, after the crop+resize (never on the decoded
    full image), and the result becomes a uint8 tensor once at the end (normalisation is on the batch).
    v2.RandAugment dispatches PIL inputs to Pillow's C kernels, about 3x faster than its uint8-tensor
    kernels at 224 px; the op and magnitude draws are the same for either input (same seeded RNG calls).
    The returned image is a (3, res, res) view of Pillow's HWC buffer (no copy): ``stack_images`` in the
    collate turns a list of them into a channels-last batch with one contiguous copy.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.randaug = v2.RandAugment(cfg.randaug_n, cfg.randaug_m)
        self.photometric = PhotometricRandAugment(cfg.randaug_n, cfg.randaug_m)

    def __call__(self, plan: SamplePlan) -> ImageSample:
        rec = plan.record
        img = decode_crop(rec.jpeg, (rec.width, rec.height), plan.crop, self.cfg.res, self.cfg.draft, rec.key)
        if plan.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.cfg.randaugment:
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(plan.seed + 1)
                aug = self.randaug if plan.kind == "image" else self.photometric
                img = aug(img)
        return ImageSample(rec.key, TF.pil_to_tensor(img), plan.texts, plan.seed)  # (3, res, res) uint8 view
