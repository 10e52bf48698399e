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
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from xvlm.train.config import OptimConfig

NEW_PARAM = re.compile(r"(^|\.)crossattention\.|^(vision_proj|text_proj|itm_head|bbox_head)\.|^temp$")


def is_new_param(name: str) -> bool:
    """True for parameters the reference initialises from scratch in pre-training."""
    return NEW_PARAM.search(name) is not None


def no_decay(name: str, p: nn.Parameter) -> bool:
    """No weight decay on biases, norm weights and the temperature (the 0- and 1-D tensors), as the reference."""
    return p.ndim <= 1 or name.endswith(".bias")


# classify(name, no_decay) -> (group key, lr multiplier, group label)
Classifier = Callable[[str, bool], tuple[tuple, float, str]]


def grouped_params(model: nn.Module, lr: float, weight_decay: float, classify: Classifier,
                   ordered: bool) -> list[dict]:
    """The one AdamW parameter-group builder: trainable parameters grouped by ``classify``'s key, each group
    with its weight decay (0 for ``no_decay``), ``lr * lr_mult``, ``lr_mult`` (schedules scale every group's
    base lr by it) and a ``name``. ``ordered``: groups sorted by key (the pre-training layout, which
    checkpoints' optimizer states are loaded against, group by group); else in first-seen order."""
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        nd = no_decay(name, p)
        key, mult, label = classify(name, nd)
        g = groups.setdefault(key, {"params": [], "weight_decay": 0.0 if nd else weight_decay, "lr": lr * mult,
                                    "lr_mult": mult, "name": f"{label}-{'nodecay' if nd else 'decay'}"})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)] if ordered else list(groups.values())


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Pre-training groups: {pre-trained, new} x {decay, no decay} (x vision when ``vision_lr_mult != 1``)."""
    split_vision = cfg.vision_lr_mult != 1.0

    def classify(name: str, nd: bool) -> tuple[tuple, float, str]:
        vision, new = split_vision and name.startswith("vision_encoder."), is_new_param(name)
        mult = (cfg.new_lr_mult if new else 1.0) * (cfg.vision_lr_mult if vision else 1.0)
        return (vision, nd, new), mult, f"{'vision-' if vision else ''}{'new' if new else 'pre'}"

    return grouped_params(model, cfg.lr, cfg.weight_decay, classify, ordered=True)


def prefix_param_groups(model: nn.Module, lr: float, weight_decay: float,
                        lr_mults: Mapping[str, float]) -> list[dict]:
    """Fine-tuning groups: {decay, no decay} x the multiplier of the first matching name prefix (else 1)."""

    def classify(name: str, nd: bool) -> tuple[tuple, float, str]:
        mult = next((m for pre, m in lr_mults.items() if name.startswith(pre)), 1.0)
        return (nd, mult), mult, f"x{mult:g}"

    return grouped_params(model, lr, weight_decay, classify, ordered=False)


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
