"""A minimal, task-agnostic fine-tuning loop with validation-based checkpoint selection.

Shared by every downstream task (retrieval, grounding here; VQA / NLVR2 / captioning can reuse it):

    result = finetune(model, loss_fn, train_loader, FinetuneConfig(...), evaluate=val_fn, callback=cb)

- ``model``: any ``nn.Module`` (an ``XVLM`` or a task model wrapping one); trained in place.
- ``loss_fn(model, batch) -> dict[str, Tensor]``: the terms are summed (all weight 1, METHOD.md §3);
  each is also reported by name.
- ``train_loader``: a sized iterable of batches (a ``DataLoader``, reshuffled by it every epoch); a batch
  is a dict of tensors (moved to ``device`` here) or anything ``loss_fn`` moves itself.
- ``evaluate(model) -> dict[str, float]``: run on **validation** after every epoch (and at ``max_steps``);
  ``FinetuneConfig.select`` names the metric to maximise. The best epoch's weights are restored into the
  model at the end (METHOD.md §7: select on validation, never on test).
- ``callback``: optional ``on_step(step, losses, lr)`` / ``on_eval(epoch, step, metrics)`` hooks (the
  flows log them to MLflow; ``xvlm`` itself never imports MLflow).

Recipe defaults follow the reference (§5.3): AdamW betas (0.9, 0.98), weight decay 0.01 (none on biases
and LayerNorm weights), linear warm-up over the first 10% of steps then linear decay to 0. ``lr_mults`` maps parameter-name
prefixes to learning-rate multipliers: the reference's x2 for task-new heads (``{"cls_head.": 2.0}``), or
a smaller vision rate when starting from an untrained tower (a randomly initialised debug Swin collapses
to one constant image feature under ITC at the text side's rate; see docs/evaluation.md).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from xvlm.errors import BadInput
from xvlm.train.optim import prefix_param_groups

LossFn = Callable[[nn.Module, Any], Mapping[str, Tensor]]


@dataclass
class FinetuneConfig:
    epochs: int = 10
    lr: float = 3e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_frac: float = 0.1
    max_steps: int | None = None  # stop early (debug / tests); the schedule spans min(total, max_steps)
    clip_grad: float | None = None
    select: str | None = None  # metric maximised on validation; None = keep the last weights
    seed: int = 0


class FinetuneCallback(Protocol):
    def on_step(self, step: int, losses: dict[str, float], lr: float) -> None: ...

    def on_eval(self, epoch: int, step: int, metrics: dict[str, float]) -> None: ...


@dataclass
class FinetuneResult:
    steps: int
    best_epoch: int | None  # 0-based epoch whose weights the model holds (None: no selection)
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: mean losses, metrics, seconds


def linear_warmup_decay(step: int, total: int, warmup_frac: float) -> float:
    """LR factor: 0 -> 1 linearly over ``warmup_frac * total`` steps, then 1 -> 0 linearly at ``total``."""
    warm = max(1, math.ceil(warmup_frac * total)) if warmup_frac > 0 else 0
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when there is a GPU: the 4m/16m presets fine-tune the base model, not a CPU job."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def finetune(model: nn.Module, loss_fn: LossFn, train_loader: Iterable[Any], cfg: FinetuneConfig, *,
             evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
             callback: FinetuneCallback | None = None, lr_mults: Mapping[str, float] | None = None,
             device: torch.device | str = "cpu") -> FinetuneResult:
    """Train ``model`` in place; see the module docstring for the contract."""
    if cfg.select is not None and evaluate is None:
        raise ValueError("FinetuneConfig.select needs an evaluate function")
    torch.manual_seed(cfg.seed)
    per_epoch = len(train_loader)  # type: ignore[arg-type]
    if per_epoch == 0:
        raise BadInput("finetune: the training loader is empty")
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(per_epoch * cfg.epochs, cfg.max_steps)
    model.to(device)
    groups = prefix_param_groups(model, cfg.lr, cfg.weight_decay, lr_mults or {})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    best_score, best_state, best_epoch, best_metrics = -math.inf, None, None, {}
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        for batch in train_loader:
            factor = linear_warmup_decay(step, total, cfg.warmup_frac)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * g["lr_mult"] * factor
            losses = loss_fn(model, to_device(batch, device))
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            vals = {k: float(v.detach()) for k, v in losses.items()}
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            step += 1
            if callback is not None:
                callback.on_step(step, vals, cfg.lr * factor)
            if step >= total:
                break
        record: dict[str, Any] = {"epoch": epoch, "step": step, "seconds": time.perf_counter() - t0,
                                  **{f"loss/{k}": v / max(n, 1) for k, v in sums.items()}}
        if evaluate is not None:
            metrics = evaluate(model)
            record["metrics"] = metrics
            if callback is not None:
                callback.on_eval(epoch, step, metrics)
            if cfg.select is not None:
                if cfg.select not in metrics:
                    raise KeyError(f"select metric {cfg.select!r} not among {sorted(metrics)}")
                if metrics[cfg.select] > best_score:
                    best_score, best_epoch, best_metrics = metrics[cfg.select], epoch, dict(metrics)
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    elif history and "metrics" in history[-1]:
        best_metrics = dict(history[-1]["metrics"])
    return FinetuneResult(step, best_epoch, copy.deepcopy(best_metrics), history)
