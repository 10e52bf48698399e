"""Process-group set-up for ``torchrun`` (gloo on CPU, NCCL on GPU) and model wrapping (DDP / FSDP2).

``torchrun --nproc-per-node N -m xvlm.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the
run is single-process and nothing is initialised.

Hang guard: every collective has the process group's timeout (``PretrainConfig.dist_timeout_s``), and NCCL
runs with ``NCCL_ENV`` (unless the environment already sets those variables): a collective that waits for a
crashed or stuck rank fails after the timeout instead of hanging, the watchdog tears the process down, and
torchrun then stops the other ranks. ``collective_failure`` turns such an error into one line that says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from xvlm.errors import DistributedFailure

# Set (if unset) before the NCCL process group is created, docs/training.md "Multi-process runs".
# ASYNC_ERROR_HANDLING=1 ("TearDown"): on an NCCL error or a collective past the timeout the watchdog aborts
# the communicators and ends the process, so the launcher sees a failed worker and stops the rest (torch's
# default, 3, ends it without aborting them). BLOCKING_WAIT stays 0: blocking would sync the CPU with the
# GPU on every collective, and the watchdog already enforces the timeout.
NCCL_ENV = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "TORCH_NCCL_BLOCKING_WAIT": "0"}

# What gloo / NCCL errors say when a peer crashed, hung or left (the exception type is a plain RuntimeError
# on gloo, torch.distributed.DistError subclasses on NCCL and the TCP store).
_COLLECTIVE_ERROR = re.compile(r"gloo|nccl|timed out|connection (closed|reset)|broken pipe|socket|watchdog",
                               re.IGNORECASE)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Initialise from torchrun's environment; picks NCCL when CUDA is used, gloo otherwise. Every
    collective fails after ``timeout_s`` seconds (it must exceed the longest rank-0-only pause: a
    checkpoint write and its MLflow copy, while the other ranks wait in the next step's collective)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            for k, v in NCCL_ENV.items():
                os.environ.setdefault(k, v)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local, dev)


def replicated_params(model: nn.Module) -> list[nn.Parameter]:
    """Parameters FSDP cannot shard: 0-d ones (the ITC temperature). They stay whole on every rank and
    ``all_reduce_grads`` averages their gradients, which FSDP would otherwise leave rank-local."""
    return [p for p in model.parameters() if p.dim() == 0]


def wrap_model(model: nn.Module, info: DistInfo, parallel: str = "ddp",
               min_unit_params: int = 1_000_000, find_unused: bool = False) -> nn.Module:
    """DDP (default) or FSDP2 ``fully_shard`` per tower (a child of the wrapped model with at least
    ``min_unit_params`` parameters gets its own unit, so only one tower is gathered at a time), for models
    too big to replicate. Scalar parameters are left out of sharding (see ``replicated_params``).
    ``find_unused``: DDP's search for parameters without a gradient this step (the fine-tunes: a task never
    uses some of the pre-trained heads); pre-training needs none, its losses touch every parameter."""
    if info.world_size == 1:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        ignored = set(replicated_params(model))
        inner = model.model if isinstance(getattr(model, "model", None), nn.Module) else model
        for child in inner.children():
            if sum(p.numel() for p in child.parameters() if p not in ignored) >= min_unit_params:
                fully_shard(child, ignored_params=ignored & set(child.parameters()))
        return fully_shard(model, ignored_params=ignored)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def all_reduce_grads(params: list[nn.Parameter], world_size: int) -> None:
    """Average the gradients of replicated (non-sharded) parameters over ranks, as DDP would. A parameter
    without a gradient on this rank takes part with zeros: skipping it would desynchronise the ranks."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world_size


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` over a mix of sharded (DTensor) and plain parameters: the global norm is the
    root of the sum of both groups' squared norms (torch's own clip refuses to mix the two kinds)."""
    from torch.distributed.tensor import DTensor

    sharded = [p for p in params if isinstance(p, DTensor)]
    plain = [p for p in params if not isinstance(p, DTensor)]
    if not sharded or not plain:
        return nn.utils.clip_grad_norm_(params, max_norm)
    norms = [nn.utils.get_total_norm([p.grad for p in group if p.grad is not None])
             for group in (sharded, plain)]
    norms = [n.full_tensor() if isinstance(n, DTensor) else n for n in norms]
    total = torch.sqrt(sum(n.float() ** 2 for n in norms))
    coef = min(1.0, max_norm / (float(total) + 1e-6))  # torch's rule, as a float: DTensor and plain mix
    if coef < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)
    return total


def collective_failure(exc: BaseException, rank: int, world_size: int, where: str, timeout_s: float,
                       ) -> DistributedFailure | None:
    """A ``DistributedFailure`` naming this rank and ``where`` when ``exc`` is a collective that failed or
    timed out (another rank crashed, hung or was stopped); None for any other error (a bug or bad input on
    this rank, re-raised as is)."""
    is_dist = isinstance(exc, getattr(dist, "DistError", ())) or (
        isinstance(exc, RuntimeError) and bool(_COLLECTIVE_ERROR.search(str(exc))))
    if world_size == 1 or not is_dist:
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DistributedFailure(
        f"rank {rank}/{world_size}: a collective failed at {where}: another rank crashed, hung or "
        f"took longer than dist_timeout_s={timeout_s:g}; the first failing rank's log has the cause "
        f"({first[:300]})")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
