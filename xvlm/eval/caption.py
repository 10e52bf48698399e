"""COCO captioning fine-tuning, beam-search generation and pycocoevalcap scores (Karpathy split).

Recipe (METHOD.md §7, reference §5.3): the X-VLM text + cross encoders run as a causal decoder
(``XVLMForCaptioning``) on ``[CLS] a picture of <caption> [SEP]``; the prompt is not scored; token
cross-entropy with label smoothing 0.1; lr 1e-5 for 5 epochs; decoding by beam search (beam 3, 5-20
tokens after the prompt, HF's length normalisation); BLEU-4 / METEOR / ROUGE-L / CIDEr on the Karpathy
test split, model selection on val CIDEr.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xvlm.data.downstream.caption import CaptionImage, pre_caption
from xvlm.eval.beam import beam_search
from xvlm.eval.caption_metrics import caption_scores
from xvlm.eval.finetune import FinetuneCallback, FinetuneResult, finetune
from xvlm.eval.vl_common import Batches, ImageCache, TaskConfig, chunks, lr_mults, tokenize
from xvlm.fsio import write_json
from xvlm.models.decoders import XVLMForCaptioning
from xvlm.models.xvlm import XVLM
from xvlm.tokenizer import build_tokenizer


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """``[CLS]`` + the prompt's word pieces (no [SEP]): the fixed prefix of every caption."""
    return [tokenizer.cls_token_id, *tokenizer(prompt.strip(), add_special_tokens=False)["input_ids"]]


def train_pairs(images: Sequence[CaptionImage], max_words: int) -> list[tuple[Path, str]]:
    """One (image, cleaned caption) pair per caption, as the reference's train file."""
    return [(im.image, pre_caption(c, max_words)) for im in images for c in im.captions]


def make_collate(images: ImageCache, tokenizer: Any, cfg: TaskConfig) -> Callable[[list[tuple[Path, str]]], dict]:
    def collate(items: list[tuple[Path, str]]) -> dict[str, Any]:
        imgs, index = images.batch([p for p, _ in items])
        ids, atts = tokenize(tokenizer, [cfg.prompt + c for _, c in items], cfg.max_tokens)
        return {"images": imgs, "image_index": index, "ids": ids, "atts": atts}
    return collate


def caption_loss_fn(prompt_len: int, label_smoothing: float) -> Callable[[XVLMForCaptioning, dict], dict[str, Tensor]]:
    def loss(model: XVLMForCaptioning, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"caption": model.loss(batch["images"], batch["image_index"], batch["ids"], batch["atts"],
                                      prompt_len, label_smoothing)}
    return loss


@torch.no_grad()
def generate_captions(model: XVLMForCaptioning, records: Sequence[CaptionImage], cfg: TaskConfig,
                      images: ImageCache | None = None) -> dict[int, str]:
    """Beam-search caption (prompt removed) per image id."""
    tok = build_tokenizer()
    images = images or ImageCache(model.cfg)
    prefix = prompt_ids(tok, cfg.prompt)
    was_training = model.training
    model.eval()
    out: dict[int, str] = {}
    dev = next(model.parameters()).device
    for part in chunks(records, cfg.eval_batch_size, "caption"):
        imgs = torch.stack([images(r.image) for r in part]).to(dev)
        vis, vatts = model.encode_image(imgs)
        prompt = torch.tensor([prefix] * len(part), device=dev)

        def step(tokens: Tensor, batch_index: Tensor, vis: Tensor = vis, vatts: Tensor = vatts) -> Tensor:
            return model.next_token_logprobs(tokens, vis[batch_index], vatts[batch_index])

        hyps = beam_search(step, prompt, cfg.beam_size, tok.sep_token_id, cfg.max_length, cfg.min_length)
        out.update({r.image_id: tok.decode(h.tokens, skip_special_tokens=True).strip()
                    for r, h in zip(part, hyps, strict=True)})
    model.train(was_training)
    return out


def evaluate_captions(model: XVLMForCaptioning, records: Sequence[CaptionImage], cfg: TaskConfig,
                      images: ImageCache | None = None, use_java: bool | None = None
                      ) -> tuple[dict[str, float], dict[int, str]]:
    """pycocoevalcap scores (x100 as the paper reports them) of generated captions, and the captions."""
    res = generate_captions(model, records, cfg, images)
    scores = caption_scores({r.image_id: list(r.captions) for r in records}, res, use_java)
    metrics = {f"caption/{k}": 100.0 * float(v) for k, v in scores.items() if k not in ("n", "skipped")}
    return metrics, res


def constant_caption_baseline(train: Sequence[CaptionImage], records: Sequence[CaptionImage],
                              use_java: bool | None = None) -> tuple[str, dict[str, float]]:
    """Scores of captioning every image with the most frequent training caption (the trivial baseline)."""
    top = Counter(pre_caption(c) for im in train for c in im.captions).most_common(1)[0][0]
    scores = caption_scores({r.image_id: list(r.captions) for r in records}, {r.image_id: top for r in records},
                            use_java)
    return top, {f"caption/{k}": 100.0 * float(v) for k, v in scores.items() if k not in ("n", "skipped")}


def write_result_json(captions: dict[int, str], path: str | Path) -> Path:
    """COCO caption result file ``[{"image_id", "caption"}]`` (what ``COCO.loadRes`` reads), atomically."""
    return write_json(path, [{"image_id": int(i), "caption": c} for i, c in sorted(captions.items())],
                      indent=None, sort_keys=False)


def finetune_caption(model: XVLM, train: Sequence[CaptionImage], val: Sequence[CaptionImage], cfg: TaskConfig,
                     callback: FinetuneCallback | None = None, device: str = "cpu",
                     use_java: bool | None = None) -> tuple[XVLMForCaptioning, FinetuneResult]:
    """Fine-tune the causal captioner built from ``model``; keep the best val-CIDEr epoch."""
    torch.manual_seed(cfg.seed)
    cap = XVLMForCaptioning(model)
    tok = build_tokenizer()
    images = ImageCache(model.cfg)
    loader = Batches(train_pairs(train, cfg.max_words), cfg.batch_size, make_collate(images, tok, cfg), cfg.seed)
    ft = cfg.finetune_config("caption/CIDEr" if val else None)
    evaluate = (lambda m: evaluate_captions(m, val, cfg, images, use_java)[0]) if val else None
    loss = caption_loss_fn(len(prompt_ids(tok, cfg.prompt)), cfg.label_smoothing)
    result = finetune(cap, loss, loader, ft, evaluate=evaluate, callback=callback,
                      lr_mults=lr_mults(cfg, cap.new_params), device=device)
    return cap, result
