"""The four X-VLM losses (METHOD.md §3) as functions of features the model returns.

- ``itc_loss``: symmetric InfoNCE over features gathered from all ranks (``gather_features``), hard or
  multi-positive targets (same image id in fine-tuning; identical texts, ``text_keys``, in pre-training),
  optional padding mask.
- ``negative_logits`` + ``sample_hard_negatives`` + ``itm_loss``: one negative per row drawn with probability
  softmax(similarity) + 1e-5 (or uniformly) over the local batch, never a pair that shares an image id or an
  identical text.
- ``mlm_loss``: cross-entropy at masked positions (masking itself happens in the data path).
- ``bbox_loss``: L1 (summed over coordinates, / #boxes) + (1 - GIoU) via ``torchvision.ops``.
- ``count_shares``: the global count of masked tokens / boxes over ranks, for MLM and bbox losses that
  weigh every target of the global batch alike however unevenly the ranks hold them.

Every loss returns a 0-dim tensor that is 0 (with a graph) when it has nothing to score, never NaN.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss

from xvlm.models.config import ItcGrad, ItmExclusion, ItmNegatives

# --------------------------------------------------------------------------------------------------------
# ITC
# --------------------------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns this rank's slice of the gradient.

    ``all_reduce=True`` sums the gradient over ranks first. Every rank computes the same global ITC loss L,
    so the summed slice is W * dL/dx_r; DDP's averaging then yields exactly dL/dtheta ("global").
    ``all_reduce=False`` is the reference's ``AllGather``: the slice of the local loss only, which after
    DDP averaging gives dL/dtheta / W ("reference").
    """

    @staticmethod
    def forward(ctx, x: Tensor, all_reduce: bool) -> Tensor:  # type: ignore[override]
        rank, world = _world()
        ctx.rank, ctx.n, ctx.all_reduce = rank, x.shape[0], all_reduce
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out, 0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        if ctx.all_reduce:
            grad = grad.contiguous()
            dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n], None


def gather_features(x: Tensor, itc_grad: ItcGrad = "global") -> Tensor:
    """Concatenate ``x`` (B, ...) from all ranks (rank order); identity in a single process.

    All ranks must pass the same B (pad and pass ``valid`` to ``itc_loss`` for ragged batches).
    """
    if _world()[1] == 1:
        return x
    if itc_grad not in ("global", "reference"):
        raise ValueError(f"itc_grad must be 'global' or 'reference', got {itc_grad!r}")
    return _GatherWithGrad.apply(x, itc_grad == "global")


def count_shares(counts: Tensor) -> Tensor | None:
    """(K,) per-rank counts -> (K,) their sum over ranks / world size; None in a single process.

    A loss ``sum_r / share`` on each rank, averaged over ranks (DDP's gradient mean, the logged mean), is
    sum over ranks / global count: the single-process loss of the global batch, and every target weighs
    the same wherever it lies. With local means instead, a rank with 2 boxes would weigh each box 8x more
    than one with 16, and a box-free rank halves the bbox gradient. One ``all_reduce`` on every rank at
    every step, whatever the batch holds (a collective skipped on one rank would desynchronise them).
    """
    if _world()[1] == 1:
        return None
    total = counts.detach().to(torch.float32).clone()
    dist.all_reduce(total)
    return total / _world()[1]


# Two polynomial hashes modulo primes below 2^26: every intermediate product stays below 2^52 (exact in
# int64), and the combined key h1 * 2^26 + h2 < 2^52 survives the float64 gather of ``gather_features``.
_KEY_PRIMES = ((67_108_859, 1_000_003), (67_108_837, 999_983))  # (modulus, base)


def text_group_keys(ids: Tensor, atts: Tensor) -> Tensor:
    """(B,) int64 key per text, equal for texts with the same attended token ids (padding ignored).

    Used to treat identical texts as positives of each other (``itc_loss(text_keys=...)``) and as
    non-negatives in ITM sampling. Distinct texts collide with probability ~2^-52 per pair.
    """
    tok = (ids.long() + 1) * (atts > 0).long()  # 0 only at padding: right-padded equal texts hash equal
    key = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
    for mod, base in _KEY_PRIMES:
        h = torch.zeros_like(key)
        for k in range(tok.shape[1]):
            h = (h * base + tok[:, k]) % mod
        key = key * (1 << 26) + h
    return key


def itc_loss(image_feat: Tensor, text_feat: Tensor, temp: Tensor | float, *, image_ids: Tensor | None = None,
             text_keys: Tensor | None = None, valid: Tensor | None = None, itc_grad: ItcGrad = "global",
             ) -> Tensor:
    """Symmetric image/concept-text contrastive loss over the global batch.

    logits = image_all @ text_all.T / temp. Targets: the diagonal, or the row-normalised "same group"
    matrix, so every member of a row's group counts as positive: groups are equal ``image_ids``
    (fine-tuning: every caption of an image) and/or equal ``text_keys`` (pre-training: a text identical to
    pair j's text is true of concept j too, so it is a positive there, not a negative; docs/training.md).
    ``valid`` (B,) bool drops padded rows from the loss and their columns from every softmax.
    loss = (CE(image->text) + CE(text->image)) / 2, averaged over valid rows.

    Args:
        image_feat, text_feat: (B, D) L2-normalised features of this rank, row b paired with row b.
        temp: temperature (already clamped by ``XVLM.temperature``).
        itc_grad: gradient convention across ranks, see ``gather_features`` / docs/model.md.
    """
    img, txt = gather_features(image_feat, itc_grad), gather_features(text_feat, itc_grad)
    logits = img @ txt.T / temp
    n = logits.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=logits.device)
    if valid is not None:
        keep = gather_features(valid.to(torch.float32), itc_grad).detach() > 0.5
    same = torch.eye(n, dtype=torch.bool, device=logits.device)
    for group in (image_ids, text_keys):
        if group is not None:
            g = gather_features(group.to(torch.float64)[:, None], itc_grad).detach()[:, 0]
            same = same | (g[:, None] == g[None, :])
    targets = same.to(logits.dtype)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    # padded columns get a huge finite negative (not -inf: -inf * 0 target would be NaN)
    col_mask = (~keep).to(logits.dtype)[None] * torch.finfo(logits.dtype).min

    def row_targets(t: Tensor) -> Tensor:
        t = t * keep[None].to(logits.dtype)
        return t / t.sum(1, keepdim=True).clamp(min=1e-12)

    i2t = -(F.log_softmax(logits + col_mask, dim=1) * row_targets(targets)).sum(1)
    t2i = -(F.log_softmax(logits.T + col_mask, dim=1) * row_targets(targets.T)).sum(1)
    return ((i2t + t2i)[keep] / 2).mean()


# --------------------------------------------------------------------------------------------------------
# ITM
# --------------------------------------------------------------------------------------------------------


def negative_logits(image_feat: Tensor, text_feat: Tensor, temp: Tensor, mode: ItmNegatives) -> Tensor:
    """(B, B) logits the ITM sampler draws from (rows = concepts, columns = texts), without a graph.

    "hard": the ITC similarity / temp (the reference); "uniform": zeros, so the softmax in
    ``sample_hard_negatives`` weighs every allowed column the same (``XVLMConfig.itm_negatives``).
    """
    with torch.no_grad():
        if mode == "hard":
            return image_feat @ text_feat.T / temp
        return image_feat.new_zeros(image_feat.shape[0], text_feat.shape[0])


def itm_exclusion_mask(image_ids: Tensor, text_keys: Tensor | None, mode: ItmExclusion = "image") -> Tensor:
    """(B, B) bool: the pairs the ITM sampler must never draw as negatives.

    ``mode`` "image" (ours): every pair sharing an image id; "diagonal" (the reference's pre-training rule):
    the positive pair itself only, so same-image regions can be drawn. ``text_keys`` (``text_group_keys``;
    None under ``text_positives = "diagonal"``) adds every pair of identical texts.
    """
    n = image_ids.shape[0]
    if mode == "diagonal":
        same = torch.eye(n, dtype=torch.bool, device=image_ids.device)
    elif mode == "image":
        same = image_ids[:, None] == image_ids[None, :]
    else:
        raise ValueError(f"itm_exclusion must be 'image' or 'diagonal', got {mode!r}")
    if text_keys is not None:
        same = same | (text_keys[:, None] == text_keys[None, :])
    return same


def negative_weights(sim: Tensor, same: Tensor) -> Tensor:
    """The sampler's row weights: softmax(sim) + 1e-5, exactly 0 where ``same`` (the reference's formula,
    whose ``fill_diagonal_(0)`` is ``same = eye``)."""
    return (F.softmax(sim.float(), dim=1) + 1e-5).masked_fill(same, 0.0)


def sample_hard_negatives(sim: Tensor, same: Tensor, generator: torch.Generator | None = None,
                          ) -> tuple[Tensor, Tensor]:
    """For each row, draw one column with probability softmax(sim[row]) + 1e-5, never where ``same``.

    Args:
        sim: (B, B) similarities (already divided by the temperature), rows = anchors.
        same: (B, B) bool, True where the pair shares an image id (includes the diagonal); such pairs are
            positives or false negatives and get weight exactly 0 (the reference zeroed only the diagonal).
    Returns:
        (index (B,) long, valid (B,) bool). A row whose every column shares its image has no negative:
        valid False and index 0; callers must drop it.
    """
    with torch.no_grad():
        w = negative_weights(sim, same)
        valid = w.sum(1) > 0
        w = torch.where(valid[:, None], w, torch.ones_like(w))  # placeholder rows, never used
        idx = torch.multinomial(w, 1, generator=generator)[:, 0]
        return torch.where(valid, idx, torch.zeros_like(idx)), valid


def itm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """2-way cross-entropy on the fusion CLS of positives (label 1) and hard negatives (label 0)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


# --------------------------------------------------------------------------------------------------------
# MLM
# --------------------------------------------------------------------------------------------------------


def mlm_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100, num_targets: Tensor | None = None,
             ) -> Tensor:
    """Cross-entropy over masked positions; (B, M, V) logits, (B, M) labels padded with ``ignore_index``.

    ``num_targets``: divide the summed cross-entropy by this (this rank's ``count_shares`` of the masked
    tokens) instead of by the local count. No target anywhere -> 0 with a graph through the MLM head.
    """
    if num_targets is None:
        if not bool((labels != ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index)
    if float(num_targets) == 0.0:
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index,
                         reduction="sum")  # 0 with a graph when this rank has no target
    return ce / num_targets


# --------------------------------------------------------------------------------------------------------
# Bounding box
# --------------------------------------------------------------------------------------------------------


def bbox_loss(pred: Tensor, target: Tensor, is_region: Tensor | None = None, num_boxes: Tensor | None = None,
              ) -> tuple[Tensor, Tensor]:
    """(L1, GIoU) losses on normalised (cx, cy, w, h) boxes, counting only region/object samples.

    L1 = sum over selected boxes and 4 coordinates / #boxes; GIoU = sum(1 - GIoU) / #boxes, with
    ``torchvision.ops.generalized_box_iou_loss`` on boxes converted to xyxy. Whole-image captions
    (``is_region`` False) are masked out; no boxes -> (0, 0). Degenerate targets are rejected up front
    (the reference silently zeroed the whole batch's GIoU instead). ``num_boxes`` replaces #boxes (this
    rank's ``count_shares`` of the global box count, under DDP / FSDP).
    """
    if is_region is None:
        is_region = torch.ones(pred.shape[0], dtype=torch.bool, device=pred.device)
    p, t = pred[is_region].float(), target[is_region].float()
    if p.shape[0] == 0:
        zero = pred.sum() * 0.0
        return zero, zero.clone()
    if bool((t[:, 2:] <= 0).any()):
        bad = torch.nonzero(is_region)[:, 0][(t[:, 2:] <= 0).any(1)].tolist()
        raise ValueError(f"bbox_loss: target boxes with non-positive width/height at rows {bad}")
    n = p.shape[0] if num_boxes is None else num_boxes
    l1 = (p - t).abs().sum() / n
    giou = generalized_box_iou_loss(box_convert(p, "cxcywh", "xyxy"), box_convert(t, "cxcywh", "xyxy"),
                                    reduction="sum") / n
    return l1, giou
