"""Activation checkpointing (issue 22, item 6): the same losses and gradients, less saved activation memory."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import make_batch
from xvlm.errors import BadInput
from xvlm.models.config import get_config
from xvlm.models.flops import BatchShape, activation_bytes
from xvlm.models.objective import pretrain_losses
from xvlm.models.xvlm import XVLM


def _losses_and_grads(towers: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    cfg = get_config("xvlm-debug")
    cfg = cfg.replace(vision=cfg.vision.__class__(**{**cfg.vision.__dict__, "drop_path_rate": 0.1}))
    torch.manual_seed(0)
    model = XVLM(cfg)
    model.train()  # dropout 0.1 and drop path 0.1 on: the recomputation must draw the same masks
    model.set_grad_checkpointing(towers)
    torch.manual_seed(1)
    losses = pretrain_losses(model, make_batch(), torch.Generator().manual_seed(2))
    sum(losses.values()).backward()
    return ({k: v.detach() for k, v in losses.items()},
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})


@pytest.mark.parametrize("towers", [("vision",), ("text", "cross"), ("vision", "text", "cross")])
def test_checkpointed_step_equals_the_plain_one(towers: tuple[str, ...]) -> None:
    plain_losses, plain_grads = _losses_and_grads(())
    losses, grads = _losses_and_grads(towers)
    assert losses.keys() == plain_losses.keys() and grads.keys() == plain_grads.keys()
    for k, v in plain_losses.items():
        assert torch.equal(losses[k], v), k
    for n, g in plain_grads.items():
        torch.testing.assert_close(grads[n], g, rtol=1e-5, atol=1e-7, msg=n)


def test_checkpointing_saves_less_and_meta_counts_as_the_cpu_does() -> None:
    cfg = get_config("xvlm-debug")
    shape = BatchShape(num_texts=4, num_images=2, seq_len=12, num_masks=3, region_fraction=0.5)
    plain = activation_bytes(cfg, shape)
    assert plain == activation_bytes(cfg, shape, device="cpu")  # the meta count is the real tensors' count
    each = {t: activation_bytes(cfg, shape, (t,)) for t in ("vision", "text", "cross")}
    every = activation_bytes(cfg, shape, ("vision", "text", "cross"))
    assert all(b < plain for b in each.values()) and every < min(each.values())
    with pytest.raises(BadInput, match="unknown towers"):
        XVLM(cfg).set_grad_checkpointing(["fusion"])
