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

Precision and memory: ``precision="bf16"`` runs the forward under bf16 autocast (weights, gradients and AdamW
state stay fp32, as in pre-training); ``activation_checkpointing`` names the towers whose layers recompute
their activations in the backward (``xvlm.models.xvlm.set_grad_checkpointing``).

Data parallel: launched by ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls ``finetune`` with its own
shard of the training set (``shard_sampler``, ``vl_common.Batches``: equal batch counts on every rank) and the same
model; the loss runs inside DDP (gradients averaged, so a per-sample-mean loss equals the single-process
loss of the global batch ``world_size x batch_size``). Rank 0 alone runs ``evaluate`` and the callback and
broadcasts the metrics, so every rank selects the same epoch.

Recipe defaults follow the reference (§5.3): AdamW betas (0.9, 0.98), weight decay 0.01 (none on biases
and LayerNorm weights), linear warm-up over the first 10% of steps then linear decay to 0. ``lr_mults`` maps parameter-name
prefixes to learning-rate multipliers: the reference's x2 for task-new heads (``{"cls_head.": 2.0}``), or
a smaller vision rate when starting from an untrained tower (a randomly initialised debug Swin collapses
to one constant image feature under ITC at the text side's rate; see docs/evaluation.md).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from xvlm.errors import BadInput
from xvlm.models.xvlm import set_grad_checkpointing
from xvlm.train.distributed import DistInfo, wrap_model
from xvlm.train.optim import prefix_param_groups

LossFn = Callable[[nn.Module, Any], Mapping[str, Tensor]]
Precision = Literal["bf16", "fp32"]


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
    precision: Precision = "fp32"  # "bf16": autocast forward, fp32 master weights (the GPU setting)
    activation_checkpointing: tuple[str, ...] = ()  # towers among ("vision", "text", "cross")


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
    """``auto`` picks CUDA when there is a GPU (the 4m/16m presets fine-tune the base model, not a CPU job):
    under torchrun this rank's GPU, ``cuda:LOCAL_RANK``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a ``forward``, so that DDP's gradient hooks see the task's own calls
    (``encode_image``, ``fuse``, ...), which are not ``model.forward``."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: Any) -> Mapping[str, Tensor]:
        return self.loss_fn(self.model, batch)


def world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_sampler(dataset: Any, seed: int) -> Any:
    """A ``DistributedSampler`` (shuffled per epoch, equal shards) under torchrun; None (the DataLoader
    shuffles) in one process."""
    rank, size = world()
    if size == 1:
        return None
    from torch.utils.data import DistributedSampler

    return DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=True, seed=seed, drop_last=True)


def _shared_metrics(evaluate: Callable[[nn.Module], dict[str, float]], model: nn.Module) -> dict[str, float]:
    """Rank 0 evaluates; every rank gets its metrics (the other ranks wait in the broadcast)."""
    rank, size = world()
    metrics = [evaluate(model) if rank == 0 else None]
    if size > 1:
        dist.broadcast_object_list(metrics, src=0)
    return metrics[0]  # type: ignore[return-value]


def finetune(model: nn.Module, loss_fn: LossFn, train_loader: Iterable[Any], cfg: FinetuneConfig, *,
             evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
             callback: FinetuneCallback | None = None, lr_mults: Mapping[str, float] | None = None,
             device: torch.device | str = "cpu") -> FinetuneResult:
    """Train ``model`` in place; see the module docstring for the contract."""
    if cfg.select is not None and evaluate is None:
        raise ValueError("FinetuneConfig.select needs an evaluate function")
    if cfg.precision not in ("bf16", "fp32"):
        raise BadInput(f"finetune: precision must be 'bf16' or 'fp32', got {cfg.precision!r}")
    rank, size = world()
    callback = callback if rank == 0 else None
    torch.manual_seed(cfg.seed)
    per_epoch = len(train_loader)  # type: ignore[arg-type]
    if per_epoch == 0:
        raise BadInput("finetune: the training loader is empty")
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(per_epoch * cfg.epochs, cfg.max_steps)
    device = torch.device(device)
    model.to(device)
    if cfg.activation_checkpointing:
        set_grad_checkpointing(model, cfg.activation_checkpointing)
    step_model = wrap_model(_LossModule(model, loss_fn), DistInfo(rank, size, device.index or 0, device),
                            find_unused=True)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    groups = prefix_param_groups(model, cfg.lr, cfg.weight_decay, lr_mults or {})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    best_score, best_state, best_epoch, best_metrics = -math.inf, None, None, {}
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        if hasattr(sampler := getattr(train_loader, "sampler", None), "set_epoch"):
            sampler.set_epoch(epoch)  # DistributedSampler: a new order every epoch
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        for batch in train_loader:
            factor = linear_warmup_decay(step, total, cfg.warmup_frac)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * g["lr_mult"] * factor
            with amp:
                losses = step_model(to_device(batch, device))
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            vals = _mean_over_ranks({k: v.detach().float() for k, v in losses.items()}, size)
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
            metrics = _shared_metrics(evaluate, model)
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


def _mean_over_ranks(losses: dict[str, Tensor], size: int) -> dict[str, float]:
    """The logged losses: each the mean over ranks (training used the rank's own)."""
    if size == 1:
        return {k: float(v) for k, v in losses.items()}
    stacked = torch.stack(list(losses.values()))
    dist.all_reduce(stacked)
    return dict(zip(losses, (stacked / size).tolist(), strict=True))
