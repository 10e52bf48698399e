"""Gathered ITC across 2 gloo processes equals single-process ITC on the whole batch.

A shared weight matrix stands in for the model; its gradient is averaged over ranks as DDP does. Under
``itc_grad="global"`` the averaged gradient equals the single-process gradient; under "reference" (the
X-VLM reference's gather) it is exactly 1/world_size of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from xvlm.models.losses import itc_loss

WORLD = 2


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.randn(5, 4, generator=g),
            torch.tensor([0, 1, 1, 2, 3, 3]))


def _loss(xi: torch.Tensor, xt: torch.Tensor, w: torch.Tensor, ids: torch.Tensor | None, mode: str) -> torch.Tensor:
    return itc_loss(F.normalize(xi @ w, dim=-1), F.normalize(xt @ w.flip(0), dim=-1), 0.1,
                    image_ids=ids, itc_grad=mode)  # type: ignore[arg-type]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        xi, xt, w0, ids = _data()
        sl = slice(rank * 3, rank * 3 + 3)
        results = {}
        for mode in ("global", "reference"):
            for use_ids in (False, True):
                w = w0.clone().requires_grad_(True)
                loss = _loss(xi[sl], xt[sl], w, ids[sl] if use_ids else None, mode)
                loss.backward()
                grad = w.grad.clone()
                dist.all_reduce(grad)
                results[(mode, use_ids)] = (loss.detach(), grad / WORLD)  # DDP averages gradients
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_gathered_itc_matches_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    xi, xt, w0, ids = _data()
    for use_ids in (False, True):
        w = w0.clone().requires_grad_(True)
        ref = _loss(xi, xt, w, ids if use_ids else None, "global")
        ref.backward()
        for rank in range(WORLD):
            res = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
            g_loss, g_grad = res[("global", use_ids)]
            r_loss, r_grad = res[("reference", use_ids)]
            torch.testing.assert_close(g_loss, ref.detach())
            torch.testing.assert_close(r_loss, ref.detach())
            torch.testing.assert_close(g_grad, w.grad)
            torch.testing.assert_close(r_grad, w.grad / WORLD)
