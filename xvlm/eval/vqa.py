"""VQA v2 fine-tuning, answer ranking, accuracy and the evaluation-server result file.

Recipe (METHOD.md §7, reference §5.3): train on VQA train (+ val, + VG QA when given) with every distinct
human answer as a target sequence weighted by its annotator share (VG: 0.5); loss = Σ weight × sequence
CE / #questions; inference ranks ``answer_list.json``: the ``k_test`` answers with the most probable first
token, re-ranked by full-sequence log-likelihood. Accuracy is the official metric (``vqa_metric``); the
result file is the list of ``{"question_id", "answer"}`` the EvalAI server accepts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xvlm.data.downstream.vqa import VG_ANSWER_WEIGHT, VQAExample, pre_question
from xvlm.errors import BadInput
from xvlm.eval.finetune import FinetuneCallback, FinetuneResult, finetune
from xvlm.eval.vl_common import Batches, ImageCache, TaskConfig, chunks, lr_mults, tokenize
from xvlm.eval.vqa_metric import answer_targets, vqa_accuracy
from xvlm.fsio import write_json
from xvlm.models.decoders import XVLMForVQA
from xvlm.models.xvlm import XVLM
from xvlm.tokenizer import build_tokenizer


@dataclass(frozen=True)
class VQATrainItem:
    image: Path
    question: str
    targets: tuple[tuple[str, float], ...]  # (answer, weight)


def train_items(examples: Sequence[VQAExample], max_words: int = 30) -> list[VQATrainItem]:
    """One item per question with answers; VQA answers weighted by share, VG answers by 0.5."""
    out = []
    for ex in examples:
        if not ex.answers:
            raise BadInput(f"question_id {ex.question_id} has no answers; test questions cannot train")
        targets = answer_targets(ex.answers) if ex.source == "vqa" else [(a, VG_ANSWER_WEIGHT) for a in ex.answers]
        out.append(VQATrainItem(ex.image, pre_question(ex.question, max_words), tuple(targets)))
    return out


def answer_tokens(tokenizer: Any, answers: Sequence[str]) -> tuple[Tensor, Tensor]:
    """``[CLS] answer [SEP]`` ids and mask (the decoder starts from [CLS] and must emit [SEP])."""
    return tokenize(tokenizer, answers, max_tokens=10)


def make_collate(images: ImageCache, tokenizer: Any, max_tokens: int) -> Callable[[list[VQATrainItem]], dict]:
    def collate(items: list[VQATrainItem]) -> dict[str, Tensor]:
        imgs, index = images.batch([it.image for it in items])
        q_ids, q_atts = tokenize(tokenizer, [it.question for it in items], max_tokens)
        answers = [a for it in items for a, _ in it.targets]
        a_ids, a_atts = answer_tokens(tokenizer, answers)
        return {"images": imgs, "image_index": index, "q_ids": q_ids, "q_atts": q_atts, "a_ids": a_ids,
                "a_atts": a_atts,
                "a_question": torch.tensor([i for i, it in enumerate(items) for _ in it.targets]),
                "a_weight": torch.tensor([w for it in items for _, w in it.targets], dtype=torch.float32)}
    return collate


def vqa_loss(model: XVLMForVQA, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"vqa": model.loss(**batch)}


@torch.no_grad()
def predict_vqa(model: XVLMForVQA, examples: Sequence[VQAExample], answer_list: Sequence[str],
                cfg: TaskConfig, images: ImageCache | None = None) -> dict[int, str]:
    """Best answer from ``answer_list`` per question id (max_words 50 at test, as the reference)."""
    tok = build_tokenizer()
    images = images or ImageCache(model.cfg)
    dev = next(model.parameters()).device
    ans_ids, ans_atts = (t.to(dev) for t in answer_tokens(tok, answer_list))
    was_training = model.training
    model.eval()
    out: dict[int, str] = {}
    for part in chunks(examples, cfg.eval_batch_size, "VQA"):
        imgs, index = images.batch([ex.image for ex in part])
        q_ids, q_atts = tokenize(tok, [pre_question(ex.question, 50) for ex in part], cfg.max_tokens)
        best, _ = model.rank_answers(imgs.to(dev), index.to(dev), q_ids.to(dev), q_atts.to(dev), ans_ids,
                                     ans_atts, k=cfg.k_test)
        out.update({ex.question_id: answer_list[int(i)] for ex, i in zip(part, best, strict=True)})
    model.train(was_training)
    return out


def annotations_of(examples: Sequence[VQAExample]) -> list[dict]:
    """Official-style annotation records (what ``vqa_accuracy`` reads) from annotated examples."""
    return [{"question_id": ex.question_id, "answer_type": ex.answer_type or "all",
             "answers": [{"answer": a} for a in ex.answers]} for ex in examples]


def evaluate_vqa(model: XVLMForVQA, examples: Sequence[VQAExample], answer_list: Sequence[str],
                 cfg: TaskConfig, images: ImageCache | None = None) -> tuple[dict[str, float], dict[int, str]]:
    preds = predict_vqa(model, examples, answer_list, cfg, images)
    acc = vqa_accuracy(preds, annotations_of(examples))
    return {f"vqa_acc/{k}" if k != "overall" else "vqa_acc": float(v) for k, v in acc.items() if k != "n"}, preds


def majority_baseline(train: Sequence[VQAExample], val: Sequence[VQAExample]) -> float:
    """VQA accuracy (%) of always answering the most frequent training answer (the trivial baseline)."""
    top = Counter(a for ex in train for a in ex.answers).most_common(1)[0][0]
    return float(vqa_accuracy({ex.question_id: top for ex in val}, annotations_of(val))["overall"])


def write_result_json(predictions: dict[int, str], path: str | Path) -> Path:
    """The evaluation-server result file: ``[{"question_id": int, "answer": str}, ...]``, written atomically."""
    rows = [{"question_id": int(q), "answer": a} for q, a in sorted(predictions.items())]
    return write_json(path, rows, indent=None, sort_keys=False)


def finetune_vqa(model: XVLM, train: Sequence[VQAExample], val: Sequence[VQAExample], answer_list: Sequence[str],
                 cfg: TaskConfig, callback: FinetuneCallback | None = None,
                 device: str = "cpu") -> tuple[XVLMForVQA, FinetuneResult]:
    """Fine-tune a VQA model built from ``model`` (its modules are reused, not copied); select on val."""
    torch.manual_seed(cfg.seed)
    vqa = XVLMForVQA(model)
    images = ImageCache(model.cfg)
    loader = Batches(train_items(train, cfg.max_words), cfg.batch_size,
                     make_collate(images, build_tokenizer(), cfg.max_tokens), cfg.seed)
    ft = cfg.finetune_config("vqa_acc" if val else None)
    evaluate = (lambda m: evaluate_vqa(m, val, answer_list, cfg, images)[0]) if val else None
    result = finetune(vqa, vqa_loss, loader, ft, evaluate=evaluate, callback=callback,
                      lr_mults=lr_mults(cfg, vqa.new_params), device=device)
    return vqa, result
