"""Process-group set-up for ``torchrun`` (gloo on CPU, NCCL on GPU) and model wrapping (DDP / FSDP2).

``torchrun --nproc-per-node N -m xvlm.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the
run is single-process and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise from torchrun's environment; picks NCCL when CUDA is used, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev)


def wrap_model(model: nn.Module, info: DistInfo, parallel: str = "ddp") -> nn.Module:
    """DDP (default) or FSDP2 ``fully_shard`` per top-level tower, for models too big to replicate."""
    if info.world_size == 1:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for child in model.children():
            if sum(p.numel() for p in child.parameters()) > 1_000_000:
                fully_shard(child)
        return fully_shard(model)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
