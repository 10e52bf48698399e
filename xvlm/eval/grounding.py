"""Box-supervised referring-expression grounding (RefCOCO+): loss, prediction and Acc@0.5 (METHOD.md §7).

The bbox head reads the fusion CLS of the expression attending to the **whole** image (concept = CLS + all
patches, every patch attended), as in pre-training's bbox term and the reference ``Grounding_bbox.py``.
Training loss = L1 + GIoU on normalised (cx, cy, w, h) (``xvlm.models.losses.bbox_loss``). Evaluation
maps each prediction back to the original image size (``boxes_to_original``) and counts IoU >= 0.5,
per RefCOCO+ split (val / testA / testB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from xvlm import progress
from xvlm.data.downstream.grounding import GroundingSplit
from xvlm.eval.batches import image_loader, tokenize
from xvlm.eval.metrics import accuracy_at_iou, boxes_to_original, paired_iou
from xvlm.models.losses import bbox_loss
from xvlm.models.xvlm import XVLM


def grounding_losses(model: XVLM, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """{bbox_l1, bbox_giou} for ``{images (B,3,R,R), text_ids, text_atts, bbox_target (B,4) cxcywh}``."""
    patches, _ = model.encode_image(batch["images"])
    full = model.concepts(patches, torch.arange(patches.shape[0], device=patches.device), None)
    text = model.encode_text(batch["text_ids"], batch["text_atts"])
    fused = model.fuse(text, batch["text_atts"], full.embeds, full.atts)
    l1, giou = bbox_loss(model.predict_bbox(fused), batch["bbox_target"])
    return {"bbox_l1": l1, "bbox_giou": giou}


@dataclass
class GroundingResult:
    metrics: dict[str, float]  # "acc_iou50" (Acc@IoU>=0.5) and "<split>/acc_iou50" per RefCOCO+ split, "miou"
    pred_xywh: Tensor  # (N, 4) predictions in original-image pixels, sample order
    gt_xywh: Tensor  # (N, 4)
    iou: Tensor  # (N,)
    splits: list[str] = field(default_factory=list)  # each sample's split


@torch.no_grad()
def predict_boxes(model: XVLM, split: GroundingSplit, tokenizer: Any, batch_size: int = 64,
                  device: torch.device | str = "cpu", max_tokens: int = 40, num_workers: int = 0) -> Tensor:
    """Normalised (cx, cy, w, h) prediction per expression; each distinct image is encoded once."""
    model.eval()
    order = sorted({s.image for s in split.samples})
    index = {p: i for i, p in enumerate(order)}
    loader = image_loader([split.image_root / p for p in order], model.cfg, batch_size, num_workers)
    patches = torch.cat([model.encode_image(x.to(device))[0]
                         for x in progress.track(loader, "encode images", unit="batch")])
    out = []
    for s in progress.track(range(0, len(split.samples), batch_size), "ground", unit="batch"):
        chunk = split.samples[s:s + batch_size]
        ids, atts = tokenize(tokenizer, [x.text for x in chunk], max_tokens)
        ids, atts = ids.to(device), atts.to(device)
        img = torch.tensor([index[x.image] for x in chunk], device=device)
        full = model.concepts(patches, img, None)
        out.append(model.predict_bbox(model.fuse(model.encode_text(ids, atts), atts, full.embeds, full.atts)))
    return torch.cat(out).float().cpu()


def score_boxes(pred_cxcywh: Tensor, split: GroundingSplit, threshold: float = 0.5) -> GroundingResult:
    """Acc@IoU (percent) overall and per split, from normalised predictions in sample order."""
    w = [s.width for s in split.samples]
    h = [s.height for s in split.samples]
    pred = boxes_to_original(pred_cxcywh, w, h)
    gt = torch.tensor([s.box for s in split.samples], dtype=torch.float64)
    iou = paired_iou(pred, gt)
    names = [s.split for s in split.samples]
    metrics = {"acc_iou50": accuracy_at_iou(pred, gt, threshold), "miou": 100.0 * float(iou.mean())}
    for name in sorted(set(names)):
        sel = torch.tensor([n == name for n in names])
        metrics[f"{name}/acc_iou50"] = accuracy_at_iou(pred[sel], gt[sel], threshold)
    return GroundingResult(metrics, pred, gt, iou, names)


def evaluate_grounding(model: XVLM, split: GroundingSplit, tokenizer: Any, batch_size: int = 64,
                       device: torch.device | str = "cpu") -> GroundingResult:
    return score_boxes(predict_boxes(model, split, tokenizer, batch_size, device), split)


def centre_box_accuracy(split: GroundingSplit, size: float = 0.5) -> float:
    """Acc@0.5 of a constant predictor: a centred box ``size`` of each side (a chance-level baseline)."""
    pred = torch.tensor([[0.5, 0.5, size, size]] * len(split.samples))
    return score_boxes(pred, split).metrics["acc_iou50"]
