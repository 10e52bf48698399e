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
last); the image is resized to the model's square ``img_size`` with Pillow bicubic (``decode_crop``'s
call, the whole image as the crop) and normalised by ``normalize_images`` with the model config's CLIP
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
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from xvlm.data.collate import build_fast_tokenizer, clean_caption, normalize_images
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.metrics import boxes_to_original
from xvlm.models.config import XVLMConfig, get_config, load_config_file
from xvlm.models.weights import convert_reference_checkpoint
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
        img = img.resize((res, res), Image.Resampling.BICUBIC, reducing_gap=3.0)
        x = TF.pil_to_tensor(img)[None].to(self.device)
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


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a file, a ``checkpoints/`` folder or a run's ``out_dir`` (via ``latest``)."""
    path = Path(path)
    if path.is_file():
        return path
    for d in (path, path / "checkpoints"):
        pointer = d / "latest"
        if pointer.is_file():
            target = d / pointer.read_text().strip()
            if not target.is_file():
                raise MissingInput(f"{pointer} names {target.name}, which does not exist")
            return target
    raise MissingInput(f"checkpoint not found: {path} (a file, or a folder with checkpoints/latest)")


def _variant_config(variant: str | XVLMConfig) -> XVLMConfig:
    if isinstance(variant, XVLMConfig):
        return variant
    if variant.endswith(".json") and Path(variant).is_file():
        return load_config_file(Path(variant))
    return get_config(variant)


def _our_config(conf: Mapping[str, Any], path: Path) -> XVLMConfig:
    """Model config of our checkpoints: pre-training (``model`` + ``model_overrides``) or a self-describing
    fine-tuned one (``model_config``)."""
    if isinstance(conf.get("model_config"), Mapping):
        return XVLMConfig.from_dict(dict(conf["model_config"]))
    if isinstance(conf.get("model"), str):
        cfg = get_config(conf["model"])
        overrides = conf.get("model_overrides") or {}
        return cfg.replace(**overrides) if overrides else cfg
    raise BadInput(f"{path}: the checkpoint's config names no model; pass variant=<config name>")


def load(checkpoint: str | Path, device: str | torch.device = "cpu", variant: str | XVLMConfig | None = None,
         ) -> Predictor:
    """Build the model a checkpoint describes, load its weights strictly, return a ``Predictor``.

    Accepts our pre-training checkpoints (``{"model", "config": PretrainConfig dict, ...}``; a run folder
    resolves through ``checkpoints/latest``), our fine-tuned ones (``config.model_config``), and released
    X-VLM checkpoints (``{"model": ...}`` in the reference layout), which are converted with
    ``convert_reference_checkpoint``. Released files carry a YAML config we do not parse, so they need
    ``variant`` (a registered name such as ``xvlm-base`` / ``xvlm-base-384``, a config JSON, or an
    ``XVLMConfig``); for ours ``variant`` overrides the recorded config.
    """
    path = resolve_checkpoint(checkpoint)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        raise BadInput(f"{path}: expected a checkpoint dict with a 'model' state dict")
    sd = {k: v for k, v in obj["model"].items() if isinstance(v, Tensor)}
    ours = any(k.startswith("cross_encoder.") for k in sd)
    conf = obj.get("config") if isinstance(obj.get("config"), Mapping) else {}
    if variant is not None:
        cfg = _variant_config(variant)
    elif ours:
        cfg = _our_config(conf, path)
    else:
        raise BadInput(f"{path}: a released (reference-layout) checkpoint; pass variant=<config name>, "
                         "e.g. xvlm-base (xvlm-base-384 for fine-tuned ones)")
    model = XVLM(cfg)
    if ours:
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise BadInput(f"{path}: weights do not fit {cfg.name!r}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    else:
        converted, report = convert_reference_checkpoint(sd, model)
        if report.unmapped or report.new:
            raise BadInput(f"{path}: reference checkpoint does not fit {cfg.name!r}: {report.summary()}; "
                             f"unmapped {report.unmapped[:5]}, missing {report.new[:5]}")
        model.load_state_dict(converted, strict=True)
    data = conf.get("data") if isinstance(conf.get("data"), Mapping) else {}
    ts = obj.get("train_state")
    step = int(ts["step"]) if isinstance(ts, Mapping) and "step" in ts else None
    dev = torch.device(device)
    return Predictor(model.eval().to(dev), dev, int(data.get("max_words", DEFAULT_MAX_WORDS)),
                     int(data.get("max_tokens", DEFAULT_MAX_TOKENS)), str(path),
                     "ours" if ours else "reference", step)


__all__ = ["Predictor", "load", "open_image", "resolve_checkpoint"]
