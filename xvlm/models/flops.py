"""Forward + backward FLOPs of one pre-training step, per text sample, for MFU accounting; and the
activation memory it keeps for the backward, with and without activation checkpointing.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the *meta* device, so even ``xvlm-base``
costs no memory and no real compute. The step runs the same feature paths as ``objective.pretrain_losses`` on a synthetic batch of the given
shape (bbox path included for ``region_fraction`` of the texts).
The counter counts matmul-like ops (linear, bmm, conv, attention) as 2 FLOPs per multiply-add; element-wise
ops are ignored, as usual for MFU.

``activation_bytes`` counts, on the meta device too, the bytes autograd saves for the backward (the tensors
its saved-tensor hooks see, parameters and their views excluded, each storage once): the activation memory
of a step at its peak, before the backward frees it. Optimizer state, weights and gradients come on top
(weights x 16 bytes for fp32 AdamW).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from xvlm.models.config import XVLMConfig
from xvlm.models.xvlm import XVLM


@dataclass(frozen=True)
class BatchShape:
    """Shape of one rank-local batch."""

    num_texts: int = 128  # B text samples
    num_images: int = 128  # N distinct images (region batches: 48 images for 128 texts)
    seq_len: int = 40  # tokens per text (max_tokens)
    num_masks: int = 8  # MLM positions per text (max_masks)
    region_fraction: float = 0.0  # share of texts supervised by the bbox loss


def _step(model: XVLM, shape: BatchShape, device: torch.device) -> torch.Tensor:
    """The feature work of ``objective.pretrain_losses`` with a fixed pair layout, as a scalar to backprop.

    Same model calls as the objective (ITC on concepts, ITM on B positives + 2B negatives, MLM through both
    encoders, bbox on the region share against full images) without its data-dependent selection, which
    meta tensors cannot evaluate. The cheap element-wise loss maths is replaced by sums.
    """
    cfg = model.cfg
    b, n, r = shape.num_texts, shape.num_images, cfg.vision.img_size
    ids = torch.zeros(b, shape.seq_len, dtype=torch.long, device=device)
    atts = torch.ones_like(ids)
    index = torch.arange(b, device=device) % n
    patches, _ = model.encode_image(torch.zeros(n, 3, r, r, device=device))
    boxes = torch.tensor([[0.0, 0.0, r / 2, r / 2]], device=device).expand(b, 4)
    concepts = model.concepts(patches, index, boxes)
    text = model.encode_text(ids, atts)
    out = (model.image_feat(concepts.embeds[:, 0]) @ model.text_feat(text).T).sum()
    rows = torch.cat([torch.arange(b, device=device)] * 3)
    out = out + model.itm_logits(model.fuse(text[rows], atts[rows], concepts.embeds[rows],
                                            concepts.atts[rows])).sum()
    mlm_fused = model.fuse(model.encode_text(ids, atts), atts, concepts.embeds, concepts.atts)
    pos = torch.zeros(b, shape.num_masks, dtype=torch.long, device=device)
    out = out + model.mlm_logits(mlm_fused, pos).sum()
    n_reg = round(b * shape.region_fraction)
    if n_reg:
        full = model.concepts(patches, index[:n_reg], None)
        out = out + model.predict_bbox(model.fuse(text[:n_reg], atts[:n_reg], full.embeds, full.atts)).sum()
    return out


def step_flops(cfg: XVLMConfig, shape: BatchShape) -> dict[str, int]:
    """Forward / backward FLOPs of one pre-training step, counted on the meta device.

    Returns {'forward', 'backward', 'total'} for the whole rank-local batch.
    """
    meta = torch.device("meta")
    with meta:
        model = XVLM(cfg)
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        out = _step(model, shape, meta)
        fwd = counter.get_total_flops()
        out.backward()
    total = counter.get_total_flops()
    return {"forward": fwd, "backward": total - fwd, "total": total}


def flops_per_sample(cfg: XVLMConfig, shape: BatchShape | None = None) -> float:
    """Forward + backward FLOPs per text sample of a pre-training step with this batch shape."""
    shape = shape or BatchShape()
    return step_flops(cfg, shape)["total"] / shape.num_texts


def activation_bytes(cfg: XVLMConfig, shape: BatchShape, checkpointing: Iterable[str] = (),
                     dtype: torch.dtype = torch.float32, device: str = "meta") -> int:
    """Bytes saved for the backward by one pre-training step (``_step``) of a fresh model, with activation
    checkpointing on the named towers (``XVLM.set_grad_checkpointing``). ``dtype`` bfloat16 runs the step
    under autocast, as ``precision="bf16"`` does (the backward-saved copies are then mostly bf16)."""
    dev = torch.device(device)
    with dev:
        model = XVLM(cfg)
    model.train()
    model.set_grad_checkpointing(checkpointing)
    params = {id(p) for p in model.parameters()}
    seen: dict[tuple[int, int], int] = {}  # (storage id or data pointer, offset) -> bytes

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        if id(base) not in params and id(t) not in params:
            key = (id(base) if t.device.type == "meta" else base.untyped_storage().data_ptr(), 0)
            seen[key] = max(seen.get(key, 0), base.numel() * base.element_size())
        return t

    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        _step(model, shape, dev)
    return sum(seen.values())
