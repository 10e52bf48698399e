"""GPU throughput and MFU of the base config (prepared; needs a CUDA GPU). Goal on one H100: >= 40% MFU.

Synthetic batches (no data loading) at 224 px, bf16 autocast, fused AdamW, the real pre-training losses
(``xvlm.models.objective.pretrain_losses``). Tries batch sizes from --max-batch down, halving on OOM, and
reports samples/s and MFU = (FLOPs per sample from ``xvlm.models.flops``, counted on the meta device)
x samples/s / peak bf16 dense FLOP/s (989e12 for H100 SXM; pass --peak for other cards).

    python bench/gpu_mfu.py --model xvlm-base --max-batch 256 --steps 20 [--compile]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from xvlm.models.config import get_config
from xvlm.models.flops import BatchShape, step_flops
from xvlm.models.objective import PretrainBatch, pretrain_losses
from xvlm.models.xvlm import XVLM
from xvlm.train.config import OptimConfig
from xvlm.train.optim import build_optimizer


def batch(b: int, res: int, seq: int, masks: int, dev: torch.device) -> PretrainBatch:
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(1000, 30000, (b, seq), generator=g)
    ids[:, 0] = 101
    boxes = torch.tensor([[16.0, 16.0, res / 2, res / 2]]).expand(b, 4).contiguous()
    return PretrainBatch(
        images=torch.randn(b, 3, res, res, generator=g).to(dev), image_index=torch.arange(b, device=dev),
        text_ids=ids.to(dev), text_atts=torch.ones_like(ids).to(dev), mlm_ids=ids.to(dev),
        mlm_pos=torch.arange(1, masks + 1).expand(b, masks).contiguous().to(dev),
        mlm_labels=ids[:, 1:masks + 1].contiguous().to(dev), boxes=boxes.to(dev),
        is_region=(torch.arange(b) % 2 == 0).to(dev),
        bbox_target=torch.tensor([[0.4, 0.4, 0.5, 0.5]]).expand(b, 4).contiguous().to(dev))


def measure(model: torch.nn.Module, opt: torch.optim.Optimizer, b: int, args: argparse.Namespace) -> float:
    dev = torch.device("cuda")
    data = batch(b, args.res, args.seq, args.masks, dev)
    fn = torch.compile(pretrain_losses) if args.compile else pretrain_losses

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses = fn(model, data)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    return b * args.steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="xvlm-base")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--seq", type=int, default=40)
    ap.add_argument("--masks", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak", type=float, default=989e12, help="peak bf16 dense FLOP/s of the card")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = get_config(args.model)
    model = XVLM(cfg).cuda().train()
    opt = build_optimizer(model, OptimConfig())
    b = args.max_batch
    while b >= 1:
        try:
            sps = measure(model, opt, b, args)
            break
        except torch.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            b //= 2
    else:
        raise SystemExit("even batch 1 does not fit")
    shape = BatchShape(num_texts=b, num_images=b, seq_len=args.seq, num_masks=args.masks, region_fraction=0.5)
    fps = step_flops(cfg, shape)["total"] / b
    print(json.dumps({"device": torch.cuda.get_device_name(), "model": args.model, "res": args.res, "batch": b,
                      "samples_per_s": round(sps, 1), "flops_per_sample": fps,
                      "mfu": round(fps * sps / args.peak, 4),
                      "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}))


if __name__ == "__main__":
    main()
