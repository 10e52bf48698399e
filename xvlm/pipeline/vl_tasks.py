"""VQA, NLVR2 and captioning fine-tunes (METHOD.md §7): one MLflow run each.

Each loads a pre-training checkpoint (or builds a fresh model when none is given, for the demo),
fine-tunes on the task's train split with selection on validation, evaluates on the test split and logs:
tags ``stage``, ``task``, ``pretrain_run_id`` (the link to the pre-training run) and ``checkpoint``; the
task config (``TaskConfig``, defaults per task in ``xvlm.pipeline.config.VL_TASK_DEFAULTS``) as params;
losses per step and validation metrics per epoch; test metrics; the result file (VQA: the
evaluation-server JSON; captions: the COCO result JSON); example PNGs.

Data layout (``data_root``; the sample corpus has it, real data can be arranged the same way):
``vqa/`` + ``coco2014/`` (VQA v2 official files), ``nlvr2/data`` + ``nlvr2/images`` (official NLVR2),
``caption/coco_karpathy_*.json`` + ``coco2014/`` (Karpathy split, ALBEF layout).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xvlm import tracking
from xvlm.eval.finetune import resolve_device
from xvlm.eval.vl_common import TaskConfig
from xvlm.pipeline.config import DownstreamConfig
from xvlm.pipeline.figures import panel_png
from xvlm.pipeline.finetune_launch import relaunch

log = logging.getLogger(__name__)
EXPERIMENT = "xvlm-finetune"


def task_config(task: str, overrides: dict[str, Any] | None = None) -> TaskConfig:
    """``TaskConfig`` defaults < the task's recipe < ``overrides`` (strict: unknown keys refused)."""
    return DownstreamConfig(tasks={task: dict(overrides or {})}).task_config(task)


def _model(checkpoint: str | None, model: str, image_size: int | None) -> Any:
    if checkpoint is None:
        import torch

        from xvlm.models.xvlm import build_model

        torch.manual_seed(0)
        return build_model(model)
    from xvlm.eval.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, model=model, image_size=image_size).model


@contextlib.contextmanager
def _run(task: str, out: Path, checkpoint: str | None, pretrain_run_id: str | None,
         cfg: TaskConfig) -> Iterator[str]:
    out.mkdir(parents=True, exist_ok=True)
    tags = {"stage": "finetune", "task": task, "pretrain_run_id": pretrain_run_id or "none",
            "checkpoint": checkpoint or "none (fresh model)"}
    with tracking.start_run(EXPERIMENT, out, f"finetune-{task}", tags, cfg.to_params()) as run_id:
        yield run_id


def finetune_vqa(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                 model: str = "xvlm-debug", image_size: int | None = None, config: dict[str, Any] | None = None,
                 examples: int = 6) -> dict[str, Any]:
    """VQA v2: train on train2014, select on val2014, accuracy on val, server JSON for test2015."""
    if (ranks := relaunch("vqa", locals(), task_config("vqa", config).devices)) is not None:
        return ranks
    from xvlm.data.downstream.vqa import read_answer_list, read_vqa
    from xvlm.eval.vqa import evaluate_vqa, majority_baseline, predict_vqa, write_result_json
    from xvlm.eval.vqa import finetune_vqa as train_vqa

    root, outp = Path(data_root), Path(out)
    cfg = task_config("vqa", config)
    q = root / "vqa"
    train = read_vqa(q / "v2_OpenEnded_mscoco_train2014_questions.json", q / "v2_mscoco_train2014_annotations.json",
                     root / "coco2014")
    val = read_vqa(q / "v2_OpenEnded_mscoco_val2014_questions.json", q / "v2_mscoco_val2014_annotations.json",
                   root / "coco2014")
    test_q = q / "v2_OpenEnded_mscoco_test2015_questions.json"
    test = read_vqa(test_q, None, root / "coco2014") if test_q.is_file() else []
    answers = read_answer_list(q / "answer_list.json")
    with _run("vqa", outp, checkpoint, pretrain_run_id, cfg) as run_id:
        vqa, result = train_vqa(_model(checkpoint, model, image_size), train, val, answers, cfg,
                                tracking.FinetuneMlflowCallback(), device=str(resolve_device()))
        metrics, preds = evaluate_vqa(vqa, val, answers, cfg)
        tracking.log_metrics({**{f"final/{k}": v for k, v in metrics.items()},
                              "final/majority_baseline": majority_baseline(train, val)})
        tracking.log_artifact(write_result_json(preds, outp / "vqa_val_result.json"))
        if test:
            tracking.log_artifact(write_result_json(predict_vqa(vqa, test, answers, cfg),
                                                    outp / "vqa_test2015_result.json"))
        panels = [([ex.image], f"Q: {ex.question}\npred: {preds[ex.question_id]}\n"
                   f"humans: {max(set(ex.answers), key=ex.answers.count)}") for ex in val[:examples]]
        tracking.log_artifact(panel_png(outp / "vqa_examples.png", panels, "VQA v2 val"), "examples")
        log.info("VQA val accuracy %.2f", metrics["vqa_acc"])
        return {"run_id": run_id, "metrics": metrics, "steps": result.steps}


def finetune_nlvr2(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                   model: str = "xvlm-debug", image_size: int | None = None, config: dict[str, Any] | None = None,
                   examples: int = 3) -> dict[str, Any]:
    """NLVR2: train on train, select on dev, accuracy on dev and test-P (``test1``)."""
    if (ranks := relaunch("nlvr2", locals(), task_config("nlvr2", config).devices)) is not None:
        return ranks
    from xvlm.data.downstream.nlvr2 import read_nlvr2
    from xvlm.eval.nlvr2 import evaluate_nlvr2
    from xvlm.eval.nlvr2 import finetune_nlvr2 as train_nlvr2

    root, outp = Path(data_root), Path(out)
    cfg = task_config("nlvr2", config)
    n = root / "nlvr2"
    train, dev, test = (read_nlvr2(n / "data" / f"{s}.json", n / "images") for s in ("train", "dev", "test1"))
    with _run("nlvr2", outp, checkpoint, pretrain_run_id, cfg) as run_id:
        m, result = train_nlvr2(_model(checkpoint, model, image_size), train, dev, cfg,
                                tracking.FinetuneMlflowCallback(), device=str(resolve_device()))
        dev_m, _ = evaluate_nlvr2(m, dev, cfg)
        test_m, preds = evaluate_nlvr2(m, test, cfg)
        metrics = {"dev_acc": dev_m["nlvr2_acc"], "test_p_acc": test_m["nlvr2_acc"]}
        tracking.log_metrics({f"final/{k}": v for k, v in metrics.items()})
        panels = [(list(ex.images), f"{ex.sentence}\npred: {bool(p)}  truth: {bool(ex.label)}")
                  for ex, p in zip(test[:examples], preds, strict=False)]
        tracking.log_artifact(panel_png(outp / "nlvr2_examples.png", panels, "NLVR2 test-P"), "examples")
        return {"run_id": run_id, "metrics": metrics, "steps": result.steps}


def finetune_caption(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                     model: str = "xvlm-debug", image_size: int | None = None,
                     config: dict[str, Any] | None = None, examples: int = 6) -> dict[str, Any]:
    """COCO captioning (Karpathy): train, select on val CIDEr, BLEU-4/METEOR/ROUGE-L/CIDEr on test."""
    if (ranks := relaunch("caption", locals(), task_config("caption", config).devices)) is not None:
        return ranks
    from xvlm.data.downstream.caption import read_karpathy_split
    from xvlm.eval.caption import evaluate_captions, write_result_json
    from xvlm.eval.caption import finetune_caption as train_caption

    root, outp = Path(data_root), Path(out)
    cfg = task_config("caption", config)
    c = root / "caption"
    train, val, test = (read_karpathy_split(c / f"coco_karpathy_{s}.json", root / "coco2014")
                        for s in ("train", "val", "test"))
    with _run("caption", outp, checkpoint, pretrain_run_id, cfg) as run_id:
        m, result = train_caption(_model(checkpoint, model, image_size), train, val, cfg,
                                  tracking.FinetuneMlflowCallback(), device=str(resolve_device()))
        metrics, caps = evaluate_captions(m, test, cfg)
        tracking.log_metrics({f"final/test/{k.split('/', 1)[1]}": v for k, v in metrics.items()})
        tracking.log_artifact(write_result_json(caps, outp / "caption_test_result.json"))
        panels = [([r.image], f"gen: {caps[r.image_id]}\nref: {r.captions[0]}") for r in test[:examples]]
        tracking.log_artifact(panel_png(outp / "caption_examples.png", panels, "COCO Karpathy test"), "examples")
        return {"run_id": run_id, "metrics": metrics, "steps": result.steps}


FINETUNES = {"vqa": finetune_vqa, "nlvr2": finetune_nlvr2, "caption": finetune_caption}


def format_vl(results: dict[str, Any]) -> list[str]:
    """One line per task: its test metrics and MLflow run id (the ``make demo`` / ``xvlm evaluate``
    counterpart of ``xvlm.pipeline.retrieval_grounding.format_downstream``)."""
    lines = []
    for task, r in results.items():
        metrics = ", ".join(f"{key.partition('/')[2] or key} {v:.1f}" for key, v in r["metrics"].items())
        lines.append(f"{task + ' (fine-tuned):':<45}{metrics}  [mlflow run {r['run_id']}]")
    return lines
