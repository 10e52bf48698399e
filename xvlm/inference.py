"""Inference API: load a checkpoint, score captions against an image, ground a phrase to a box.

```python
from xvlm.inference import load
p = load("runs/demo/train")                         # our run dir / checkpoint file
p = load("xvlm_4m.th", variant="xvlm-base")          # a released X-VLM checkpoint (converted)
p.score("cat.jpg", ["a cat on a sofa", "a red bus"])  # {"itc": [...], "itm": [...]}
p.ground("cat.jpg", "the cat")                        # (x, y, w, h) in the original image's pixels
```

Preprocessing is the training path's, not a look-alike: captions go through ``clean_caption`` with the
run's ``max_words`` and the same Rust WordPiece tokenizer truncated to ``max_tokens`` (``[SEP]`` kept
last); the image is resized to the model's square ``img_size`` by the training loader's resize
(``augment.resize_hwc``, torch's antialiased bicubic, the whole image as the crop) and normalised by ``normalize_images`` with the model config's CLIP
mean / std. Because the whole image is resized without cropping, a normalised box maps back to the
original image by scaling x by its width and y by its height (``xvlm.eval.metrics.boxes_to_original``).

Scores (METHOD.md §3): ``itc`` = cos(image feature, text feature) / temperature, the logit the ITC loss
uses, with the image's whole-image concept (CLS + every patch); ``itm`` = softmax(ITM head)[match] of the
fusion CLS of the text attending to the whole image. ``ground`` reads the bbox head from the same fusion.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from xvlm.data.augment import resize_hwc
from xvlm.data.collate import build_fast_tokenizer, clean_caption, normalize_images
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.checkpoint import load_checkpoint, resolve_checkpoint
from xvlm.eval.metrics import boxes_to_original
from xvlm.models.config import XVLMConfig
from xvlm.models.xvlm import XVLM

ImageLike = Image.Image | str | os.PathLike[str]

# Reference defaults (the released fine-tuning configs pad texts to 40 tokens, 4M pre-training caps 40 words).
DEFAULT_MAX_WORDS = 40
DEFAULT_MAX_TOKENS = 40


def open_image(image: ImageLike) -> Image.Image:
    """A PIL image (RGB) from a path or an image; a missing / undecodable file raises naming the path."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise MissingInput(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise BadInput(f"{path}: cannot decode the image ({e})") from e


@dataclass
class Predictor:
    """A model in eval mode plus the text and image preprocessing it was trained with."""

    model: XVLM
    device: torch.device
    max_words: int = DEFAULT_MAX_WORDS
    max_tokens: int = DEFAULT_MAX_TOKENS
    source: str = ""
    kind: str = "ours"  # "ours" | "reference"
    step: int | None = None

    # ---------------------------------------------------------------- preprocessing

    def image_tensor(self, image: ImageLike) -> Tensor:
        """(1, 3, R, R) normalised float tensor on the device (the training loader's resize + normalise)."""
        img = open_image(image)
        res = self.model.cfg.vision.img_size
        hwc = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
        x = resize_hwc(hwc, res)[None].to(self.device)
        return normalize_images(x, self.model.cfg.image_mean, self.model.cfg.image_std)

    def tokenize(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Cleaned, tokenised texts -> (ids, attention mask) (B, L), padded to the longest."""
        if isinstance(texts, str) or not texts:
            raise BadInput("texts must be a non-empty list of strings")
        cleaned = [clean_caption(t, self.max_words) for t in texts]
        empty = [i for i, c in enumerate(cleaned) if not c]
        if empty:
            raise BadInput(f"text {empty[0]} ({texts[empty[0]]!r}) is empty after cleaning (punctuation only)")
        tok = build_fast_tokenizer()
        encs = [e.ids for e in tok.encode_batch(cleaned)]
        encs = [i if len(i) <= self.max_tokens else i[: self.max_tokens - 1] + [i[-1]] for i in encs]
        length = max(len(i) for i in encs)
        ids = torch.zeros((len(encs), length), dtype=torch.long)  # [PAD] = 0
        atts = torch.zeros_like(ids)
        for r, i in enumerate(encs):
            ids[r, : len(i)] = torch.tensor(i)
            atts[r, : len(i)] = 1
        return ids.to(self.device), atts.to(self.device)

    # ---------------------------------------------------------------- predictions

    @torch.no_grad()
    def _fused(self, image: ImageLike, texts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """(image ITC feature (1, D), text features (B, D), fused (B, L, H)) against the whole image."""
        m = self.model
        patches, _ = m.encode_image(self.image_tensor(image))
        ids, atts = self.tokenize(texts)
        full = m.concepts(patches, torch.zeros(len(ids), dtype=torch.long, device=self.device), None)
        text = m.encode_text(ids, atts)
        fused = m.fuse(text, atts, full.embeds, full.atts)
        return m.image_feat(full.embeds[:1, 0]), m.text_feat(text), fused

    @torch.no_grad()
    def score(self, image: ImageLike, texts: Sequence[str]) -> dict[str, list[float]]:
        """``{"itc": [cos/temp per text], "itm": [P(match) per text]}``, in the order of ``texts``."""
        img_feat, txt_feat, fused = self._fused(image, texts)
        itc = (txt_feat @ img_feat[0]) / self.model.temperature()
        itm = self.model.itm_logits(fused).float().softmax(dim=-1)[:, 1]
        return {"itc": itc.float().cpu().tolist(), "itm": itm.cpu().tolist()}

    @torch.no_grad()
    def ground(self, image: ImageLike, text: str) -> tuple[float, float, float, float]:
        """The box ``text`` refers to, (x, y, w, h) in the original image's pixels, clipped to the image."""
        img = open_image(image)
        _, _, fused = self._fused(img, [text])
        box = boxes_to_original(self.model.predict_bbox(fused).cpu(), [img.width], [img.height])[0]
        x0, y0 = max(0.0, float(box[0])), max(0.0, float(box[1]))
        x1, y1 = min(float(img.width), float(box[0] + box[2])), min(float(img.height), float(box[1] + box[3]))
        return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))

    def ground_picture(self, image: ImageLike, text: str, out_png: str | Path | None = None,
                       true_box: Sequence[float] | None = None) -> tuple[tuple[float, float, float, float], Image.Image]:
        """``xvlm ground IMG TEXT --out out.png``: the box and ``xvlm.viz.grounding_picture`` of it (saved
        atomically to ``out_png`` when given)."""
        from xvlm.viz import grounding_picture, save_png

        img = open_image(image)
        box = self.ground(img, text)
        picture = grounding_picture(img, text, box, true_box)
        if out_png is not None:
            save_png(picture, out_png)
        return box, picture


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def load(checkpoint: str | Path, device: str | torch.device = "cpu", variant: str | XVLMConfig | None = None,
         allow_config_change: bool = False) -> Predictor:
    """Build the model a checkpoint describes, load its weights strictly, return a ``Predictor``.

    The loading is evaluation's (``xvlm.eval.checkpoint.load_checkpoint``, the one path): our pre-training
    checkpoints (``{"model", "config": PretrainConfig dict, ...}``; a run folder resolves through
    ``checkpoints/latest``), our fine-tuned ones (``config.model_config``), a bare state dict, and released
    X-VLM checkpoints (``{"model": ...}`` in the reference layout), converted with
    ``convert_reference_checkpoint``. Released files carry a YAML config we do not parse, so they need
    ``variant`` (a registered name such as ``xvlm-base`` / ``xvlm-base-384``, a config JSON, or an
    ``XVLMConfig``); for ours (and exported folders) the checkpoint's own config is used, and a ``variant``
    that differs from it is an error naming the fields unless ``allow_config_change``.
    """
    loaded = load_checkpoint(checkpoint, model=variant, allow_config_change=allow_config_change)
    data = loaded.config.get("data") if isinstance(loaded.config.get("data"), Mapping) else {}
    dev = torch.device(device)
    return Predictor(loaded.model.eval().to(dev), dev, int(data.get("max_words", DEFAULT_MAX_WORDS)),
                     int(data.get("max_tokens", DEFAULT_MAX_TOKENS)), loaded.source,
                     "reference" if loaded.kind == "reference" else "ours", loaded.step)


__all__ = ["Predictor", "load", "open_image", "resolve_checkpoint"]
