"""Fixtures for the model tests: a small mixed (whole-image + region) pre-training batch."""

from __future__ import annotations

import pytest
import torch

from xvlm.models.objective import PretrainBatch


def make_batch(seed: int = 0, img: int = 96) -> PretrainBatch:
    g = torch.Generator().manual_seed(seed)
    b, length, m = 6, 12, 3
    ids = torch.randint(1000, 2000, (b, length), generator=g)
    ids[:, 0] = 101
    atts = torch.ones(b, length, dtype=torch.long)
    atts[0, 8:] = 0
    labels = torch.randint(1000, 2000, (b, m), generator=g)
    labels[0, 2] = -100
    return PretrainBatch(
        images=torch.randn(3, 3, img, img, generator=g),
        image_index=torch.tensor([0, 0, 1, 1, 2, 2]),
        text_ids=ids, text_atts=atts, mlm_ids=ids.clone(),
        mlm_pos=torch.randint(1, 8, (b, m), generator=g), mlm_labels=labels,
        boxes=torch.tensor([[0, 0, img, img], [10, 10, 30, 40], [0, 0, img, img], [50, 50, 40, 40],
                            [0, 0, img, img], [5, 60, 10, 10]], dtype=torch.float32),
        is_region=torch.tensor([False, True, False, True, False, True]),
        bbox_target=torch.rand(b, 4, generator=g) * 0.5 + 0.1,
    )


@pytest.fixture
def debug_batch() -> PretrainBatch:
    return make_batch()
