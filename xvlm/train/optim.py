"""AdamW parameter groups and the warmup + linear-decay schedule (METHOD.md §5).

Four groups: {decay, no decay} x {pretrained, new}. No decay on biases, norm weights and the temperature
(1-D tensors), as the reference. "New" = parameters that no pre-trained checkpoint provides and that the
reference trains at ``lr * lr_mult`` (2x): cross-attention, ``vision_proj``, ``text_proj``, ``temp``,
``itm_head``, ``bbox_head``.

With ``vision_lr_mult != 1`` the ``vision_encoder.*`` parameters get their own groups at that extra factor
(a from-scratch tower, docs/training.md); at 1.0 the four groups above stay as they are, so checkpoints of
runs without the option keep resuming (the optimizer state is loaded group by group).
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from xvlm.train.config import OptimConfig

NEW_PARAM = re.compile(r"(^|\.)crossattention\.|^(vision_proj|text_proj|itm_head|bbox_head)\.|^temp$")


def is_new_param(name: str) -> bool:
    """True for parameters the reference initialises from scratch in pre-training."""
    return NEW_PARAM.search(name) is not None


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """AdamW groups; each carries ``lr_mult`` so the schedule scales every group's base lr."""
    split_vision = cfg.vision_lr_mult != 1.0
    groups: dict[tuple[bool, bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(".bias")
        vision = split_vision and name.startswith("vision_encoder.")
        groups.setdefault((vision, no_decay, is_new_param(name)), []).append(p)
    out = []
    for (vision, no_decay, new), params in sorted(groups.items()):
        mult = (cfg.lr_mult_new if new else 1.0) * (cfg.vision_lr_mult if vision else 1.0)
        out.append({"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                    "lr": cfg.lr * mult, "lr_mult": mult, "name": f"{'vision-' if vision else ''}"
                    f"{'new' if new else 'pre'}-{'nodecay' if no_decay else 'decay'}"})
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    fused = all(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             fused=fused or None)


def warmup_linear(warmup: int, total: int):
    """lr factor: linear 0 -> 1 over ``warmup`` steps, then linear 1 -> 0 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> LambdaLR:
    return LambdaLR(opt, warmup_linear(min(cfg.warmup_steps, total_steps), total_steps))
