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
    fast_resize: bool = True  # decode_crop_fast (torch uint8 bicubic); False: Pillow's (decode_crop)


# --------------------------------------------------------------------------------------------------------
# Planning (metadata only)
# --------------------------------------------------------------------------------------------------------


def plan_image_text(rec: ImageRecord, cfg: AugmentConfig, rng: random.Random, seed: int) -> SamplePlan | None:
    """One random caption, RandomResizedCrop parameters, flip (swapping left/right in the caption)."""
    captions = [c for c in (clean_caption(c, cfg.max_words) for c in rec.captions) if c]
    if not captions:
        return None
    text = rng.choice(captions)
    crop = rrc_params(rec.height, rec.width, cfg.scale, torch.Generator().manual_seed(seed))
    flip = rng.random() < 0.5
    if flip:
        text = swap_left_right(text)
    return SamplePlan(rec, "image", crop, flip, [TextSample(text, None, False)], seed)


# torchvision keeps log(ratio) as a float32 tensor: the same float32 bounds give the same uniform draws
_LOG_RATIO_T: tuple[float, float] = tuple(torch.log(torch.tensor((3 / 4, 4 / 3))).tolist())  # type: ignore[assignment]


def rrc_params(height: int, width: int, scale: tuple[float, float], gen: torch.Generator,
               ) -> tuple[int, int, int, int]:
    """(left, top, width, height) of ``v2.RandomResizedCrop(scale=scale).make_params`` (ratio 3/4-4/3).

    The same draws in the same order from ``gen`` as torchvision makes from the global generator seeded
    alike (so the crops of a seed are torchvision's: ``tests/train/test_loader_fast.py``), without building
    a transform, a dummy image and a ``fork_rng`` per sample (about 100 us of a ~2.5 ms sample).
    """
    area = height * width
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=gen).item()
        aspect = torch.exp(torch.empty(1).uniform_(*_LOG_RATIO_T, generator=gen)).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, size=(1,), generator=gen).item())
            j = int(torch.randint(0, width - w + 1, size=(1,), generator=gen).item())
            return j, i, w, h
    in_ratio = width / height  # torchvision's fallback: central crop at the nearest allowed ratio
    if in_ratio < 3 / 4:
        w, h = width, int(round(width / (3 / 4)))
    elif in_ratio > 4 / 3:
        w, h = int(round(height * (4 / 3))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


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
    """Decode, crop and resize to res x res (Pillow bicubic) in one pass, at reduced size when possible.

    Pillow's draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling: the work shrinks with
    the pixel count). We request the smallest scale at which the crop still has >= res pixels per side, so
    the output never comes from an upsampled crop that full decoding would not have upsampled. This is the
    simple path (inference uses its resize); training uses :func:`decode_crop_fast`.
    """
    img, fx, fy = _decode(jpeg, size, crop, res, draft, key)
    left, top, cw, ch = crop
    box = (left * fx, top * fy, (left + cw) * fx, (top + ch) * fy)
    # reducing_gap: a cheap integer box-reduce first, then bicubic over >= 3x the output (Pillow docs)
    return img.resize((res, res), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


def decode_crop_fast(jpeg: bytes, size: tuple[int, int], crop: tuple[int, int, int, int], res: int,
                     draft: bool = True, key: str = "") -> Image.Image:
    """:func:`decode_crop` with the resize in torch's uint8 antialiased bicubic kernel (AVX2).

    Why: Pillow's bicubic resize (no SIMD) was the largest single cost of a sample, about 1.0 ms of ~2.5 ms
    for a 384 px stored image on this machine; ``interpolate(uint8, channels-last, bicubic, antialias)``
    does the same filter (PIL's a = -0.5 cubic, support scaled by the reduction) in about 0.35 ms.
    Differences from the simple path: the kernel's own rounding (a level or two) and the crop's edges on
    whole pixels of the decoded image (a draft-decoded crop may start half a decoded pixel off);
    ``tests/train/test_loader_fast.py`` bounds both.
    """
    img, fx, fy = _decode(jpeg, size, crop, res, draft, key)
    left, top, cw, ch = crop
    x0, y0 = min(round(left * fx), img.size[0] - 1), min(round(top * fy), img.size[1] - 1)
    x1, y1 = max(x0 + 1, round((left + cw) * fx)), max(y0 + 1, round((top + ch) * fy))
    hwc = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
    out = resize_hwc(hwc[y0:y1, x0:x1], res).numpy()
    # the output is planar (CHW), and merging three "L" planes in Pillow is cheaper than a transposing copy
    return Image.merge("RGB", [Image.frombuffer("L", (res, res), out[c], "raw", "L", 0, 1) for c in range(3)])


def resize_hwc(hwc: torch.Tensor, res: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, res, res) uint8, torch's antialiased bicubic: the training loader's resize, also
    what inference uses so that both see the same pixels. A contiguous channels-last input takes the uint8
    SIMD path (a strided view of a whole image is ~2x slower)."""
    chw = hwc.contiguous().permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(chw, size=(res, res), mode="bicubic", antialias=True)[0]


def _decode(jpeg: bytes, size: tuple[int, int], crop: tuple[int, int, int, int], res: int, draft: bool,
            key: str) -> tuple[Image.Image, float, float]:
    """The RGB image decoded at the draft scale ``decode_crop`` documents, and its scale to ``size``."""
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
    return img, fx, fy


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
        decode = decode_crop_fast if self.cfg.fast_resize else decode_crop
        img = decode(rec.jpeg, (rec.width, rec.height), plan.crop, self.cfg.res, self.cfg.draft, rec.key)
        if plan.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.cfg.randaugment:
            aug = self.randaug if plan.kind == "image" else self.photometric
            img = randaugment(aug, img, torch.Generator().manual_seed(plan.seed + 1))
        hwc = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
        return ImageSample(rec.key, hwc.permute(2, 0, 1), plan.texts, plan.seed)  # (3, res, res) uint8 view


def randaugment(ra: v2.RandAugment, img: Image.Image, gen: torch.Generator) -> Image.Image:
    """``ra(img)`` with the global generator seeded like ``gen``: the same ops, magnitudes and pixels.

    ``v2.RandAugment.forward`` per call flattens its input as a pytree, rebuilds the magnitude tables and
    needs ``fork_rng`` around it to take a per-sample seed (about 0.2 ms a sample); this replays its draws
    (op index, then the sign for signed ops) from ``gen`` and applies torchvision's own op
    (``_apply_image_or_video_transform``). ``tests/train/test_loader_fast.py`` checks pixel equality.
    """
    space = ra._AUGMENTATION_SPACE
    names = tuple(space)
    height, width = img.size[1], img.size[0]
    for _ in range(ra.num_ops):
        op = names[int(torch.randint(len(names), (), generator=gen))]
        magnitudes_fn, signed = space[op]
        magnitudes = magnitudes_fn(ra.num_magnitude_bins, height, width)
        magnitude = 0.0
        if magnitudes is not None:
            magnitude = float(magnitudes[ra.magnitude])
            if signed and torch.rand((), generator=gen) <= 0.5:
                magnitude *= -1
        img = ra._apply_image_or_video_transform(img, op, magnitude, interpolation=ra.interpolation,
                                                 fill=ra._fill)
    return img
