"""Hand-computed retrieval recalls (ties, several captions per image) and grounding Acc@IoU."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_convert, box_iou

from xvlm.eval.metrics import (
    accuracy_at_iou,
    best_gt_ranks,
    boxes_to_original,
    paired_iou,
    positives_matrix,
    retrieval_metrics,
)

# 3 images, 5 texts: image 0 has texts 0, 1; image 1 has texts 2, 3; image 2 has text 4.
TXT2IMG = [0, 0, 1, 1, 2]
S = torch.tensor([
    #  t0    t1    t2    t3    t4
    [0.9, 0.1, 0.5, 0.2, 0.3],   # img 0: best gt t0 (0.9) beats all -> rank 0
    [0.8, 0.1, 0.1, 0.7, 0.6],   # img 1: best gt t3 (0.7); t0 (0.8) above -> rank 1
    [0.5, 0.5, 0.5, 0.1, 0.5],   # img 2: gt t4 (0.5) ties with t0, t1, t2 -> pessimistic rank 3
])


def test_best_gt_ranks_hand_case() -> None:
    pos = positives_matrix(TXT2IMG, 3)
    assert best_gt_ranks(S, pos).tolist() == [0, 1, 3]
    # IR: per text, rank of its image in column order of S.T
    #   t0: gt img0 0.9 > 0.8, 0.5 -> 0;  t1: gt img0 0.1, others 0.1 (tie), 0.5 -> 2
    #   t2: gt img1 0.1, others 0.5, 0.5 -> 2; t3: gt img1 0.7 > 0.2, 0.1 -> 0; t4: gt img2 0.5 < 0.6 -> 1
    assert best_gt_ranks(S.T, pos.T).tolist() == [0, 2, 2, 0, 1]


def test_retrieval_metrics_hand_case() -> None:
    m = retrieval_metrics(S, S.T, TXT2IMG, ks=(1, 2, 5))
    # TR ranks [0, 1, 3]: R@1 = 1/3, R@2 = 2/3, R@5 = 3/3
    assert m["txt_r1"] == pytest.approx(100 / 3)
    assert m["txt_r2"] == pytest.approx(200 / 3)
    assert m["txt_r5"] == pytest.approx(100.0)
    # IR ranks [0, 2, 2, 0, 1]: R@1 = 2/5, R@2 = 3/5, R@5 = 5/5
    assert m["img_r1"] == pytest.approx(40.0)
    assert m["img_r2"] == pytest.approx(60.0)
    assert m["img_r5"] == pytest.approx(100.0)
    assert m["txt_r_mean"] == pytest.approx((100 / 3 + 200 / 3 + 100) / 3)
    assert m["img_r_mean"] == pytest.approx(200 / 3)
    assert m["r_mean"] == pytest.approx((m["txt_r_mean"] + m["img_r_mean"]) / 2)


def test_unscored_candidates_never_hit() -> None:
    # A re-ranker scored only t1 for image 0: its gt t0 is -inf and must not count as found.
    s = torch.full((1, 3), float("-inf"))
    s[0, 1] = 2.0
    pos = positives_matrix([0, 1, 1], 2)[:1]
    assert best_gt_ranks(s, pos).tolist() == [2]


def test_positives_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        positives_matrix([0, 3], 2)
    with pytest.raises(ValueError, match="without a ground truth"):
        best_gt_ranks(torch.zeros(2, 2), torch.tensor([[True, False], [False, False]]))


def test_paired_iou_equals_torchvision_diagonal() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.cat([torch.rand(20, 2, generator=g) * 50, torch.rand(20, 2, generator=g) * 30 + 1], 1)
    b = torch.cat([torch.rand(20, 2, generator=g) * 50, torch.rand(20, 2, generator=g) * 30 + 1], 1)
    ref = box_iou(box_convert(a, "xywh", "xyxy"), box_convert(b, "xywh", "xyxy")).diagonal()
    assert torch.allclose(paired_iou(a, b).float(), ref, atol=1e-6)


def test_accuracy_at_iou_hand_boxes() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    pred = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],   # IoU 1
        [0.0, 0.0, 10.0, 5.0],    # IoU 50/100 = 0.5 exactly -> counts (>=)
        [5.0, 0.0, 10.0, 10.0],   # inter 50, union 150 -> 1/3
        [20.0, 20.0, 5.0, 5.0],   # disjoint
    ])
    assert paired_iou(pred, gt).tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.0])
    assert accuracy_at_iou(pred, gt) == pytest.approx(50.0)
    assert accuracy_at_iou(pred, gt, threshold=0.3) == pytest.approx(75.0)


def test_boxes_mapped_back_to_original_size() -> None:
    # Image 200 wide x 100 high, resized to a square for the model; predicted centre (0.25, 0.5),
    # size (0.1, 0.2) of the square -> in the original: centre (50, 50), size (20, 20) -> xywh (40, 40, 20, 20).
    pred = torch.tensor([[0.25, 0.5, 0.1, 0.2], [0.5, 0.5, 1.0, 1.0]])
    out = boxes_to_original(pred, [200, 64], [100, 48])
    assert out.tolist()[0] == pytest.approx([40.0, 40.0, 20.0, 20.0])
    assert out.tolist()[1] == pytest.approx([0.0, 0.0, 64.0, 48.0])   # whole image
    assert not math.isnan(float(out.sum()))
