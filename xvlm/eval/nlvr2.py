"""NLVR2 fine-tuning and accuracy (dev / test-P), reference recipe §5.3 (lr 3e-5, 10 epochs, best on dev)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from xvlm.data.downstream.caption import pre_caption
from xvlm.data.downstream.nlvr2 import NLVR2Example
from xvlm.eval.finetune import FinetuneCallback, FinetuneResult, finetune
from xvlm.eval.vl_common import Batches, ImageCache, TaskConfig, chunks, lr_mults, tokenize
from xvlm.models.nlvr import XVLMForNLVR2
from xvlm.models.xvlm import XVLM
from xvlm.tokenizer import build_tokenizer


def make_collate(images: ImageCache, tokenizer: Any, cfg: TaskConfig) -> Callable[[Sequence[NLVR2Example]], dict]:
    def collate(items: Sequence[NLVR2Example]) -> dict[str, Tensor]:
        ids, atts = tokenize(tokenizer, [pre_caption(ex.sentence, cfg.max_words) for ex in items], cfg.max_tokens)
        return {"left": torch.stack([images(ex.images[0]) for ex in items]),
                "right": torch.stack([images(ex.images[1]) for ex in items]),
                "ids": ids, "atts": atts, "label": torch.tensor([ex.label for ex in items])}
    return collate


def nlvr2_loss(model: XVLMForNLVR2, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"nlvr2": F.cross_entropy(model(batch["left"], batch["right"], batch["ids"], batch["atts"]),
                                     batch["label"])}


@torch.no_grad()
def predict_nlvr2(model: XVLMForNLVR2, examples: Sequence[NLVR2Example], cfg: TaskConfig,
                  images: ImageCache | None = None) -> list[int]:
    """Predicted label (1 = True) per example."""
    images = images or ImageCache(model.cfg)
    collate = make_collate(images, build_tokenizer(), cfg)
    was_training = model.training
    model.eval()
    out: list[int] = []
    dev = next(model.parameters()).device
    for part in chunks(examples, cfg.eval_batch_size, "NLVR2"):
        b = {k: v.to(dev) if isinstance(v, Tensor) else v for k, v in collate(part).items()}
        out += model(b["left"], b["right"], b["ids"], b["atts"]).argmax(-1).tolist()
    model.train(was_training)
    return out


def evaluate_nlvr2(model: XVLMForNLVR2, examples: Sequence[NLVR2Example], cfg: TaskConfig,
                   images: ImageCache | None = None) -> tuple[dict[str, float], list[int]]:
    preds = predict_nlvr2(model, examples, cfg, images)
    acc = 100.0 * sum(p == ex.label for p, ex in zip(preds, examples, strict=True)) / len(examples)
    return {"nlvr2_acc": acc}, preds


def majority_baseline(train: Sequence[NLVR2Example], evaluated: Sequence[NLVR2Example]) -> float:
    """Accuracy (%) of always predicting the most frequent training label."""
    top = int(2 * sum(ex.label for ex in train) >= len(train))
    return 100.0 * sum(ex.label == top for ex in evaluated) / len(evaluated)


def finetune_nlvr2(model: XVLM, train: Sequence[NLVR2Example], dev: Sequence[NLVR2Example], cfg: TaskConfig,
                   callback: FinetuneCallback | None = None,
                   device: str = "cpu") -> tuple[XVLMForNLVR2, FinetuneResult]:
    """Fine-tune the two-image model built from ``model``; keep the best dev-accuracy epoch."""
    torch.manual_seed(cfg.seed)
    nlvr = XVLMForNLVR2(model, cfg.nlvr_design)  # type: ignore[arg-type]
    images = ImageCache(model.cfg)
    loader = Batches(train, cfg.batch_size, make_collate(images, build_tokenizer(), cfg), cfg.seed)
    ft = cfg.finetune_config("nlvr2_acc" if dev else None)
    evaluate = (lambda m: evaluate_nlvr2(m, dev, cfg, images)[0]) if dev else None
    result = finetune(nlvr, nlvr2_loss, loader, ft, evaluate=evaluate, callback=callback,
                      lr_mults=lr_mults(cfg, nlvr.new_params), device=device)
    return nlvr, result
