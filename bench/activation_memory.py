"""Activation memory of the base model per GPU, with and without activation checkpointing (issue 22, item 6).

Counted on the meta device (``xvlm.models.flops.activation_bytes``: the bytes autograd saves for the
backward, each storage once, parameters excluded), so it needs no GPU and no real memory (fp32: autocast does
not act on meta tensors, so bf16 is extrapolated from CPU runs at 4 and 8 texts); the weights +
gradients + AdamW state (16 bytes per fp32 parameter) are added for the per-GPU total under DDP. The step is
the pre-training step's feature work (``flops._step``: ITC, ITM on 3B pairs, MLM, bbox on the region share);
for the 384 px fine-tunes the same step at their batch is an upper bound of the retrieval / grounding step.

    .venv/bin/python bench/activation_memory.py            # the table in bench/RESULTS.md
"""

from __future__ import annotations

import dataclasses

import torch

from xvlm.models.config import get_config
from xvlm.models.flops import BatchShape, activation_bytes
from xvlm.models.xvlm import XVLM

CASES = [  # (name, model config, rank-local batch)
    ("pre-training image-text, 224 px, 128 pairs/GPU", "xvlm-base",
     BatchShape(num_texts=128, num_images=128, seq_len=30, num_masks=6, region_fraction=0.0)),
    ("pre-training region batch, 224 px, 48 images / 128 texts", "xvlm-base",
     BatchShape(num_texts=128, num_images=48, seq_len=30, num_masks=6, region_fraction=1.0)),
    ("fine-tune, 384 px, batch 20/GPU (retrieval)", "xvlm-base-384",
     BatchShape(num_texts=20, num_images=20, seq_len=40, num_masks=8, region_fraction=0.0)),
]
SETTINGS = [(), ("vision",), ("vision", "text", "cross")]
GIB = 2**30


def _cpu(cfg, shape: BatchShape, n: int, towers: tuple[str, ...], dtype: torch.dtype) -> int:
    small = dataclasses.replace(shape, num_texts=n, num_images=max(1, shape.num_images * n // shape.num_texts))
    return activation_bytes(cfg, small, towers, dtype=dtype, device="cpu")


def main() -> None:
    print("| step | checkpointed | fp32 activations GiB | bf16 activations GiB | bf16 + weights, grads, AdamW GiB |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, model, shape in CASES:
        cfg = get_config(model)
        with torch.device("meta"):
            state = sum(p.numel() for p in XVLM(cfg).parameters()) * 16
        for towers in SETTINGS:
            fp32 = activation_bytes(cfg, shape, towers)  # meta: no memory, no compute
            # autocast does not act on meta tensors: bf16 is measured on the CPU at 4 and 8 texts; the
            # difference is the per-sample cost (bf16 / fp32 slope), the rest the fixed bf16 weight copies
            f4, f8 = (_cpu(cfg, shape, n, towers, torch.float32) for n in (4, 8))
            b4, b8 = (_cpu(cfg, shape, n, towers, torch.bfloat16) for n in (4, 8))
            slope = (b8 - b4) / (f8 - f4)
            bf16 = fp32 * slope + (b4 - slope * f4)
            print(f"| {name} | {', '.join(towers) or 'none'} | {fp32 / GIB:.1f} | {bf16 / GIB:.1f} | "
                  f"{(bf16 + state) / GIB:.1f} |", flush=True)


if __name__ == "__main__":
    main()
