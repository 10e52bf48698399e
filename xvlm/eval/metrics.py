"""Evaluation metrics: retrieval Recall@K (TR / IR) and grounding Acc@IoU.

Retrieval follows ALBEF / X-VLM's ``itm_eval`` (METHOD.md §7): for text retrieval (TR) a query image is a
hit at K when *any* of its captions ranks in the top K; for image retrieval (IR) a query text is a hit when
its image does. Scores are percentages; ``r_mean`` is the mean of the six recalls.

Ties: the reference sorts with ``np.argsort`` so a tie's outcome depends on the sort order. Here the rank of
a query's best ground truth is the number of *non-ground-truth* candidates scoring greater than **or equal
to** it (ties count against the query), which is deterministic and never flatters a model; entries a
re-ranker did not score are ``-inf`` and so never rank above a scored candidate.

Grounding (reference ``grounding_eval_bbox``): the predicted normalised (cx, cy, w, h) is scaled by the
*original* image's width and height (the evaluation transform is a plain square resize, so normalised
coordinates are the same in both frames), and a prediction is correct when IoU >= 0.5 with the true box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_area, box_convert

RECALL_KS: tuple[int, ...] = (1, 5, 10)


def best_gt_ranks(scores: Tensor, positives: Tensor) -> Tensor:
    """0-based rank of each row's best positive: #negatives with score >= the best positive's score.

    Args:
        scores: (Q, C) query-by-candidate scores (``-inf`` = not scored).
        positives: (Q, C) bool, True where the candidate is a ground truth of the query; every row needs one.
    """
    if scores.shape != positives.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} differ")
    if not bool(positives.any(1).all()):
        bad = torch.nonzero(~positives.any(1))[:, 0][:5].tolist()
        raise ValueError(f"queries without a ground truth: rows {bad}")
    s = scores.double()
    best = s.masked_fill(~positives, float("-inf")).max(1).values  # (Q,)
    return ((s >= best[:, None]) & ~positives).sum(1)


def recall_at_k(ranks: Tensor, ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """Percentage of queries whose 0-based rank is < K, for each K."""
    n = max(int(ranks.numel()), 1)
    return {k: 100.0 * float((ranks < k).sum()) / n for k in ks}


def positives_matrix(txt2img: Sequence[int] | Tensor, n_images: int) -> Tensor:
    """(N_img, N_txt) bool: entry (i, t) True when text t describes image i."""
    t2i = torch.as_tensor(txt2img, dtype=torch.long)
    if t2i.numel() and (int(t2i.min()) < 0 or int(t2i.max()) >= n_images):
        raise ValueError(f"txt2img has image indices outside [0, {n_images})")
    pos = torch.zeros(n_images, len(t2i), dtype=torch.bool)
    pos[t2i, torch.arange(len(t2i))] = True
    return pos


def retrieval_metrics(score_i2t: Tensor, score_t2i: Tensor, txt2img: Sequence[int] | Tensor,
                      ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """TR / IR Recall@K (percent) and their means, keys as the reference's ``itm_eval``.

    Args:
        score_i2t: (N_img, N_txt) scores used to rank texts for each image (TR).
        score_t2i: (N_txt, N_img) scores used to rank images for each text (IR).
        txt2img: (N_txt,) image index of each text; an image may have several texts.
    Returns:
        ``txt_r{k}``, ``img_r{k}``, ``txt_r_mean``, ``img_r_mean``, ``r_mean``.
    """
    n_img, n_txt = score_i2t.shape
    if score_t2i.shape != (n_txt, n_img):
        raise ValueError(f"score_t2i must be {(n_txt, n_img)}, got {tuple(score_t2i.shape)}")
    pos = positives_matrix(txt2img, n_img)
    tr = recall_at_k(best_gt_ranks(score_i2t.cpu(), pos), ks)
    ir = recall_at_k(best_gt_ranks(score_t2i.cpu(), pos.T), ks)
    out = {f"txt_r{k}": v for k, v in tr.items()} | {f"img_r{k}": v for k, v in ir.items()}
    out["txt_r_mean"] = sum(tr.values()) / len(tr)
    out["img_r_mean"] = sum(ir.values()) / len(ir)
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    return out


# --------------------------------------------------------------------------------------------------------
# Grounding
# --------------------------------------------------------------------------------------------------------


def boxes_to_original(pred_cxcywh: Tensor, widths: Tensor | Sequence[float],
                      heights: Tensor | Sequence[float]) -> Tensor:
    """Normalised (cx, cy, w, h) predictions -> (x, y, w, h) pixels of each original image.

    Valid because the evaluation transform resizes the whole image to a square without cropping: a point
    at fraction f of the resized side is at fraction f of the original side.
    """
    w = torch.as_tensor(widths, dtype=torch.float64)
    h = torch.as_tensor(heights, dtype=torch.float64)
    scale = torch.stack([w, h, w, h], dim=-1)
    return box_convert(pred_cxcywh.double() * scale, "cxcywh", "xywh")


def paired_iou(a_xywh: Tensor, b_xywh: Tensor) -> Tensor:
    """IoU of row i of ``a`` with row i of ``b`` (boxes as x, y, w, h); the diagonal of
    ``torchvision.ops.box_iou`` computed elementwise (O(N), not O(N^2))."""
    if a_xywh.shape != b_xywh.shape:
        raise ValueError(f"box tensors differ in shape: {tuple(a_xywh.shape)} vs {tuple(b_xywh.shape)}")
    a = box_convert(a_xywh.double(), "xywh", "xyxy")
    b = box_convert(b_xywh.double(), "xywh", "xyxy")
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = box_area(a) + box_area(b) - inter
    return inter / union.clamp(min=1e-12)


def box_iou(a_xywh: Sequence[float], b_xywh: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes: ``paired_iou`` on one pair (pictures and logs)."""
    return float(paired_iou(torch.tensor([list(a_xywh)]), torch.tensor([list(b_xywh)]))[0])


def accuracy_at_iou(pred_xywh: Tensor, gt_xywh: Tensor, threshold: float = 0.5) -> float:
    """Percentage of predictions with IoU >= ``threshold`` against their ground truth (Acc@0.5)."""
    if pred_xywh.shape[0] == 0:
        raise ValueError("accuracy_at_iou: no boxes to score")
    return 100.0 * float((paired_iou(pred_xywh, gt_xywh) >= threshold).double().mean())
