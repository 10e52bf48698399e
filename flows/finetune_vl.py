"""Prefect flows ``finetune-vqa``, ``finetune-nlvr2``, ``finetune-caption``: one MLflow run each.

Each flow loads a pre-training checkpoint (or builds a fresh model when none is given, for the demo),
fine-tunes on the task's train split with selection on validation, evaluates on the test split and logs
to MLflow: tags ``stage``, ``task``, ``pretrain_run_id`` (the link to the pre-training run) and
``checkpoint``; the task config as params; losses per step and validation metrics per epoch; test
metrics; the result file (VQA: the evaluation-server JSON; captions: the COCO result JSON); example PNGs.

Data layout (``data_root``; the sample corpus has it, real data can be arranged the same way):
``vqa/`` + ``coco2014/`` (VQA v2 official files), ``nlvr2/data`` + ``nlvr2/images`` (official NLVR2),
``caption/coco_karpathy_*.json`` + ``coco2014/`` (Karpathy split, ALBEF layout).
``run_downstream`` runs any of the three for the ``pretrain`` flow's evaluation stage.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.tracking import FinetuneMlflowCallback, experiment_id
from xvlm.eval.finetune import resolve_device

EXPERIMENT = "xvlm-finetune"


# ------------------------------------------------------------------------------------------------- helpers
def _model(checkpoint: str | None, model: str, image_size: int | None) -> Any:
    if checkpoint is None:
        import torch

        from xvlm.models.xvlm import build_model

        torch.manual_seed(0)
        return build_model(model)
    from xvlm.eval.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, model=model, image_size=image_size).model


def _task_config(overrides: dict[str, Any] | None, **defaults: Any) -> Any:
    from xvlm.eval.vl_common import TaskConfig

    fields = {f.name for f in dataclasses.fields(TaskConfig)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ValueError(f"unknown task config keys {unknown}; known: {sorted(fields)}")
    return TaskConfig(**{**defaults, **(overrides or {})})


def _start(task: str, out: Path, checkpoint: str | None, pretrain_run_id: str | None, cfg: Any) -> Any:
    import mlflow

    out.mkdir(parents=True, exist_ok=True)
    run = mlflow.start_run(experiment_id=experiment_id(EXPERIMENT, out), run_name=f"finetune-{task}")
    mlflow.set_tags({"stage": "finetune", "task": task, "pretrain_run_id": pretrain_run_id or "none",
                     "checkpoint": checkpoint or "none (fresh model)"})
    mlflow.log_params(cfg.to_params())
    return run


def _panel_png(path: Path, panels: Sequence[tuple[Sequence[Any], str]], title: str) -> Path:
    """One row of panels, each showing one or two images over a caption (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    cols = sum(len(imgs) for imgs, _ in panels)
    fig, axes = plt.subplots(1, cols, figsize=(2.6 * cols, 3.4), squeeze=False)
    k = 0
    for imgs, text in panels:
        for j, p in enumerate(imgs):
            ax = axes[0, k]
            with Image.open(p) as im:
                ax.imshow(im.convert("RGB"))
            ax.set_axis_off()
            if j == 0:
                ax.set_title("\n".join(textwrap.wrap(text, 28 * len(imgs))), fontsize=8, loc="left")
            k += 1
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------- VQA
@flow(name="finetune-vqa")
def finetune_vqa_flow(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                      model: str = "xvlm-debug", image_size: int | None = None,
                      config: dict[str, Any] | None = None, examples: int = 6) -> dict[str, Any]:
    """VQA v2: train on train2014, select on val2014, accuracy on val, server JSON for test2015."""
    import mlflow

    from xvlm.data.downstream.vqa import read_answer_list, read_vqa
    from xvlm.eval.vqa import evaluate_vqa, finetune_vqa, majority_baseline, predict_vqa, write_result_json

    root, outp = Path(data_root), Path(out)
    cfg = _task_config(config, lr=5e-5)
    q = root / "vqa"
    train = read_vqa(q / "v2_OpenEnded_mscoco_train2014_questions.json", q / "v2_mscoco_train2014_annotations.json",
                     root / "coco2014")
    val = read_vqa(q / "v2_OpenEnded_mscoco_val2014_questions.json", q / "v2_mscoco_val2014_annotations.json",
                   root / "coco2014")
    test_q = q / "v2_OpenEnded_mscoco_test2015_questions.json"
    test = read_vqa(test_q, None, root / "coco2014") if test_q.is_file() else []
    answers = read_answer_list(q / "answer_list.json")
    with _start("vqa", outp, checkpoint, pretrain_run_id, cfg) as run:
        vqa, result = finetune_vqa(_model(checkpoint, model, image_size), train, val, answers, cfg, FinetuneMlflowCallback(),
                                   device=str(resolve_device()))
        metrics, preds = evaluate_vqa(vqa, val, answers, cfg)
        mlflow.log_metrics({**{f"final/{k}": v for k, v in metrics.items()},
                            "final/majority_baseline": majority_baseline(train, val)})
        mlflow.log_artifact(str(write_result_json(preds, outp / "vqa_val_result.json")))
        if test:
            mlflow.log_artifact(str(write_result_json(predict_vqa(vqa, test, answers, cfg),
                                                      outp / "vqa_test2015_result.json")))
        panels = [([ex.image], f"Q: {ex.question}\npred: {preds[ex.question_id]}\n"
                   f"humans: {max(set(ex.answers), key=ex.answers.count)}") for ex in val[:examples]]
        mlflow.log_artifact(str(_panel_png(outp / "vqa_examples.png", panels, "VQA v2 val")), "examples")
        get_run_logger().info("VQA val accuracy %.2f", metrics["vqa_acc"])
        return {"run_id": run.info.run_id, "metrics": metrics, "steps": result.steps}


# ------------------------------------------------------------------------------------------------- NLVR2
@flow(name="finetune-nlvr2")
def finetune_nlvr2_flow(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                        model: str = "xvlm-debug", image_size: int | None = None,
                        config: dict[str, Any] | None = None, examples: int = 3) -> dict[str, Any]:
    """NLVR2: train on train, select on dev, accuracy on dev and test-P (``test1``)."""
    import mlflow

    from xvlm.data.downstream.nlvr2 import read_nlvr2
    from xvlm.eval.nlvr2 import evaluate_nlvr2, finetune_nlvr2

    root, outp = Path(data_root), Path(out)
    cfg = _task_config(config, lr=3e-5, batch_size=10)
    n = root / "nlvr2"
    train, dev, test = (read_nlvr2(n / "data" / f"{s}.json", n / "images") for s in ("train", "dev", "test1"))
    with _start("nlvr2", outp, checkpoint, pretrain_run_id, cfg) as run:
        m, result = finetune_nlvr2(_model(checkpoint, model, image_size), train, dev, cfg, FinetuneMlflowCallback(),
                                   device=str(resolve_device()))
        dev_m, _ = evaluate_nlvr2(m, dev, cfg)
        test_m, preds = evaluate_nlvr2(m, test, cfg)
        metrics = {"dev_acc": dev_m["nlvr2_acc"], "test_p_acc": test_m["nlvr2_acc"]}
        mlflow.log_metrics({f"final/{k}": v for k, v in metrics.items()})
        panels = [(list(ex.images), f"{ex.sentence}\npred: {bool(p)}  truth: {bool(ex.label)}")
                  for ex, p in zip(test[:examples], preds, strict=False)]
        mlflow.log_artifact(str(_panel_png(outp / "nlvr2_examples.png", panels, "NLVR2 test-P")), "examples")
        return {"run_id": run.info.run_id, "metrics": metrics, "steps": result.steps}


# ------------------------------------------------------------------------------------------------- captions
@flow(name="finetune-caption")
def finetune_caption_flow(data_root: str, out: str, checkpoint: str | None = None,
                          pretrain_run_id: str | None = None, model: str = "xvlm-debug",
                          image_size: int | None = None, config: dict[str, Any] | None = None,
                          examples: int = 6) -> dict[str, Any]:
    """COCO captioning (Karpathy): train, select on val CIDEr, BLEU-4/METEOR/ROUGE-L/CIDEr on test."""
    import mlflow

    from xvlm.data.downstream.caption import read_karpathy_split
    from xvlm.eval.caption import evaluate_captions, finetune_caption, write_result_json

    root, outp = Path(data_root), Path(out)
    cfg = _task_config(config, lr=1e-5, epochs=5, batch_size=32)
    c = root / "caption"
    train, val, test = (read_karpathy_split(c / f"coco_karpathy_{s}.json", root / "coco2014")
                        for s in ("train", "val", "test"))
    with _start("caption", outp, checkpoint, pretrain_run_id, cfg) as run:
        m, result = finetune_caption(_model(checkpoint, model, image_size), train, val, cfg, FinetuneMlflowCallback(),
                                     device=str(resolve_device()))
        metrics, caps = evaluate_captions(m, test, cfg)
        mlflow.log_metrics({f"final/test/{k.split('/', 1)[1]}": v for k, v in metrics.items()})
        mlflow.log_artifact(str(write_result_json(caps, outp / "caption_test_result.json")))
        panels = [([r.image], f"gen: {caps[r.image_id]}\nref: {r.captions[0]}") for r in test[:examples]]
        mlflow.log_artifact(str(_panel_png(outp / "caption_examples.png", panels, "COCO Karpathy test")), "examples")
        return {"run_id": run.info.run_id, "metrics": metrics, "steps": result.steps}


FLOWS = {"vqa": finetune_vqa_flow, "nlvr2": finetune_nlvr2_flow, "caption": finetune_caption_flow}


def run_downstream(tasks: Sequence[str], data_root: str, out: str, checkpoint: str | None,
                   pretrain_run_id: str | None, model: str = "xvlm-debug",
                   configs: dict[str, dict[str, Any]] | None = None, image_size: int | None = None
                   ) -> dict[str, Any]:
    """Run the named fine-tune flows (as subflows when called inside a flow) for ``pretrain``'s evaluation.

    ``image_size``: fine-tune resolution (the paper's 384; None keeps the checkpoint's)."""
    unknown = sorted(set(tasks) - set(FLOWS))
    if unknown:
        raise ValueError(f"unknown downstream tasks {unknown}; known: {sorted(FLOWS)}")
    return {t: FLOWS[t](data_root=data_root, out=str(Path(out) / t), checkpoint=checkpoint,
                        pretrain_run_id=pretrain_run_id, model=model, image_size=image_size,
                        config=(configs or {}).get(t))
            for t in tasks}


def format_vl(results: dict[str, Any]) -> list[str]:
    """One line per task of ``run_downstream``'s result: its test metrics and MLflow run id (the
    ``make demo`` / ``xvlm evaluate`` counterpart of ``flows.evaluate.format_downstream``)."""
    lines = []
    for task, r in results.items():
        metrics = ", ".join(f"{key.partition('/')[2] or key} {v:.1f}" for key, v in r["metrics"].items())
        lines.append(f"{task + ' (fine-tuned):':<45}{metrics}  [mlflow run {r['run_id']}]")
    return lines
