"""Concept pooling (METHOD.md §2) on hand-computed cases: 224 px, stride 32, 7x7 grid."""

from __future__ import annotations

import torch

from xvlm.models.xvlm import box_to_patch_mask, concept_pooling


def selected(box: list[float]) -> list[int]:
    return torch.nonzero(box_to_patch_mask(torch.tensor([box]), 7, 32)[0])[:, 0].tolist()


def test_box_smaller_than_a_patch_selects_the_one_patch_it_lies_in() -> None:
    # x 40..45 -> column 1; y 70..75 -> row 2 -> index 7*2 + 1
    assert selected([40, 70, 5, 5]) == [15]


def test_small_box_touching_four_patches_selects_all_four() -> None:
    # x 30..34 touches columns 0 and 1, y likewise rows 0 and 1
    assert selected([30, 30, 4, 4]) == [0, 1, 7, 8]


def test_box_on_the_border_is_clamped_to_the_grid() -> None:
    assert selected([200, 210, 24, 14]) == [48]  # last column, last row
    assert selected([224, 0, 0, 10]) == [6]  # zero-width box on the right edge: still one patch
    assert selected([0, 100, 224, 30]) == list(range(21, 35))  # rows 3 and 4, every column


def test_full_image_selects_everything_and_equals_no_box() -> None:
    assert selected([0, 0, 224, 224]) == list(range(49))
    tokens = torch.randn(2, 49, 8)
    a = concept_pooling(tokens, torch.tensor([1]), torch.tensor([[0.0, 0, 224, 224]]), 32)
    b = concept_pooling(tokens, torch.tensor([1]), None, 32)
    torch.testing.assert_close(a.embeds, b.embeds)
    torch.testing.assert_close(a.embeds[0, 0], tokens[1].mean(0))  # concept CLS = image CLS
    assert a.atts.tolist() == [[1] * 50]


def test_concept_cls_is_the_masked_mean_and_the_mask_keeps_cls_and_box() -> None:
    # token k of image n has value 100 n + k in every channel
    tokens = (torch.arange(49.0)[None, :, None] + 100.0 * torch.arange(2.0)[:, None, None]).expand(2, 49, 3)
    c = concept_pooling(tokens, torch.tensor([1, 0]), torch.tensor([[30.0, 30, 4, 4], [40, 70, 5, 5]]), 32)
    assert c.embeds.shape == (2, 50, 3)
    assert c.embeds[0, 0].tolist() == [100 + (0 + 1 + 7 + 8) / 4] * 3
    assert c.embeds[1, 0].tolist() == [15.0] * 3
    torch.testing.assert_close(c.embeds[0, 1:], tokens[1])  # all patch tokens of its own image follow
    assert torch.nonzero(c.atts[0])[:, 0].tolist() == [0, 1, 2, 8, 9]  # CLS + patches shifted by one
    assert torch.nonzero(c.atts[1])[:, 0].tolist() == [0, 16]
