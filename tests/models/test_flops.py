"""FLOP count: an exact analytic check on the projection heads, scaling, and the base config on meta."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from xvlm.models.config import get_config
from xvlm.models.flops import BatchShape, flops_per_sample, step_flops
from xvlm.models.xvlm import XVLM


def test_counter_counts_linear_layers_as_2mnk() -> None:
    model = XVLM(get_config("xvlm-debug"))
    x = torch.randn(5, model.cfg.vision.width)
    with FlopCounterMode(display=False) as c:
        model.vision_proj(x)
    assert c.get_total_flops() == 2 * 5 * model.cfg.vision.width * model.cfg.embed_dim


def test_step_flops_scale_with_batch_and_backward_is_about_twice_forward() -> None:
    cfg = get_config("xvlm-debug")
    one = step_flops(cfg, BatchShape(num_texts=4, num_images=2, seq_len=12, num_masks=3, region_fraction=0.5))
    two = step_flops(cfg, BatchShape(num_texts=8, num_images=4, seq_len=12, num_masks=3, region_fraction=0.5))
    assert 1.9 < two["total"] / one["total"] <= 2.1
    assert 1.5 < one["backward"] / one["forward"] < 2.5


def test_base_flops_per_sample_on_meta() -> None:
    # Swin-B at 224 is ~15.4 GMACs forward, so ~93 GFLOPs fwd+bwd per image alone; the BERT side adds less.
    f = flops_per_sample(get_config("xvlm-base"), BatchShape(num_texts=2, num_images=2, seq_len=40, num_masks=8))
    assert 120e9 < f < 300e9
