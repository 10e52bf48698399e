"""One pre-training step's losses: the model's feature paths wired to ``xvlm.models.losses``.

A batch mixes whole-image captions and region/object texts ("mixed in batch", METHOD.md §3): Swin runs
once per distinct image, every text sample points at its image and optionally a box. ITC, ITM and MLM use
the sample's visual concept (box-pooled CLS + box mask); bbox regression uses the full image and counts
only region samples. The returned dict holds the five loss terms; the caller sums them (all weight 1).

Under DDP / FSDP every rank runs the same modules and collectives at every step, whatever its batch
holds: a loss with nothing to score (no region text, no masked token) is still a zero that runs through
its head, so every parameter gets a (zero) gradient on every rank and the gradient all-reduce /
reduce-scatter sequences match (a rank without boxes used to leave ``bbox_head`` out: "collective size
mismatch" on gloo, a hang on NCCL). MLM and bbox divide by the global target counts (``count_shares``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from xvlm.models.losses import (
    bbox_loss,
    count_shares,
    itc_loss,
    itm_exclusion_mask,
    itm_loss,
    mlm_loss,
    negative_logits,
    sample_hard_negatives,
    text_group_keys,
)
from xvlm.models.xvlm import XVLM

LOSS_KEYS = ("itc", "itm", "mlm", "bbox_l1", "bbox_giou")


@dataclass
class PretrainBatch:
    """Tensors of one (rank-local) pre-training batch; B text samples over N distinct images.

    images: (N, 3, R, R) normalised images.
    image_index: (B,) long, row of ``images`` for each text sample.
    text_ids / text_atts: (B, L) token ids ([CLS] first) and attention mask (1 = token).
    mlm_ids: (B, L) the same texts with the data path's MLM corruption applied.
    mlm_pos / mlm_labels: (B, M) masked positions and original ids (labels padded with -100).
    boxes: (B, 4) (x, y, w, h) pixels in the resized R x R frame, or None when every sample is a
        whole-image caption (a whole-image sample inside a region batch carries (0, 0, R, R)).
    is_region: (B,) bool, samples whose box is supervised by the bbox loss (None: none are).
    bbox_target: (B, 4) normalised (cx, cy, w, h) targets (None when ``is_region`` is None).
    image_ids: (B,) long identity of the underlying image, used to keep same-image pairs out of the ITM
        negatives (None: ``image_index`` is used, correct when each distinct image appears once).
    """

    images: Tensor
    image_index: Tensor
    text_ids: Tensor
    text_atts: Tensor
    mlm_ids: Tensor
    mlm_pos: Tensor
    mlm_labels: Tensor
    boxes: Tensor | None = None
    is_region: Tensor | None = None
    bbox_target: Tensor | None = None
    image_ids: Tensor | None = None


def pretrain_losses(model: XVLM, batch: PretrainBatch, generator: torch.Generator | None = None,
                    ) -> dict[str, Tensor]:
    """ITC + ITM + MLM (+ bbox L1 / GIoU) for one batch; returns {name: 0-dim loss} for ``LOSS_KEYS``."""
    cfg = model.cfg
    n_boxes = batch.is_region.sum() if batch.is_region is not None and batch.bbox_target is not None else None
    counts = torch.stack([(batch.mlm_labels != -100).sum(),
                          n_boxes if n_boxes is not None else batch.mlm_labels.new_zeros(())])
    shares = count_shares(counts)  # None in one process: local counts, as before
    temp = model.temperature()
    patches, _ = model.encode_image(batch.images)
    concepts = model.concepts(patches, batch.image_index, batch.boxes)
    text = model.encode_text(batch.text_ids, batch.text_atts)
    image_feat, text_feat = model.image_feat(concepts.embeds[:, 0]), model.text_feat(text)

    # Identical texts (same token ids) are positives of each other's concepts, not negatives: a deliberate
    # deviation from the reference's diagonal targets (docs/training.md, "False negatives"; METHOD.md §3);
    # ``cfg.text_positives = "diagonal"`` restores the reference's rule.
    keys = text_group_keys(batch.text_ids, batch.text_atts) if cfg.text_positives == "identical" else None
    out = {"itc": itc_loss(image_feat, text_feat, temp, text_keys=keys, itc_grad=cfg.itc_grad)}

    # ITM: 1 hard-negative concept per text, 1 hard-negative text per concept (``cfg.itm_negatives``: drawn
    # by ITC similarity, or uniformly), never the same image nor an identical text (either makes the
    # "negative" pair a positive or undecidable); ``cfg.itm_exclusion = "diagonal"`` excludes only the
    # positive pair (the reference).
    ids = batch.image_ids if batch.image_ids is not None else batch.image_index
    same = itm_exclusion_mask(ids, keys, cfg.itm_exclusion)
    sim_i2t = negative_logits(image_feat, text_feat, temp, cfg.itm_negatives)
    neg_img, ok_img = sample_hard_negatives(sim_i2t.T, same, generator)  # for each text
    neg_txt, ok_txt = sample_hard_negatives(sim_i2t, same, generator)  # for each concept
    b = torch.arange(len(ids), device=ids.device)
    img_rows = torch.cat([b, neg_img[ok_img], b[ok_txt]])
    txt_rows = torch.cat([b, b[ok_img], neg_txt[ok_txt]])
    labels = torch.cat([torch.ones_like(b), torch.zeros_like(img_rows[len(b):])])
    fused = model.fuse(text[txt_rows], batch.text_atts[txt_rows],
                       concepts.embeds[img_rows], concepts.atts[img_rows])
    out["itm"] = itm_loss(model.itm_logits(fused), labels)

    # MLM: corrupted text through both encoders, conditioned on the same visual concept.
    mlm_text = model.encode_text(batch.mlm_ids, batch.text_atts)
    mlm_fused = model.fuse(mlm_text, batch.text_atts, concepts.embeds, concepts.atts)
    out["mlm"] = mlm_loss(model.mlm_logits(mlm_fused, batch.mlm_pos), batch.mlm_labels,
                          num_targets=None if shares is None else shares[0])

    # Bbox: region texts against the *full* image (whole-image CLS + all patches, all attended).
    if n_boxes is not None and int(n_boxes) > 0:
        sel = torch.nonzero(batch.is_region)[:, 0]
        full = model.concepts(patches, batch.image_index[sel], None)
        box_fused = model.fuse(text[sel], batch.text_atts[sel], full.embeds, full.atts)
        out["bbox_l1"], out["bbox_giou"] = bbox_loss(model.predict_bbox(box_fused), batch.bbox_target[sel],
                                                     num_boxes=None if shares is None else shares[1])
    elif shares is not None:
        # No box on this rank (DDP / FSDP): a zero that still runs ``bbox_head`` through its forward (so FSDP's
        # hooks fire too), on one already-fused row, so the head gets a zero gradient here and the gradient
        # collectives match the ranks that have boxes.
        zero = model.predict_bbox(fused[:1]).sum() * 0.0
        out["bbox_l1"], out["bbox_giou"] = zero, zero.clone()
    else:  # one process: nothing to synchronise; the head gets no gradient and AdamW skips it
        zero = patches.sum() * 0.0
        out["bbox_l1"], out["bbox_giou"] = zero, zero.clone()
    return out
