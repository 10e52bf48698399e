"""Prefect flows ``finetune-vqa``, ``finetune-nlvr2``, ``finetune-caption``: one MLflow run each.

The work (data layout, selection on validation, what each run logs) is in ``xvlm.pipeline.vl_tasks``.
``run_downstream`` runs any of the three for the ``pretrain`` flow's evaluation stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow

from xvlm.errors import BadInput
from xvlm.pipeline import vl_tasks


@flow(name="finetune-vqa")
def finetune_vqa_flow(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                      model: str = "xvlm-debug", image_size: int | None = None,
                      config: dict[str, Any] | None = None, examples: int = 6) -> dict[str, Any]:
    """VQA v2: train on train2014, select on val2014, accuracy on val, server JSON for test2015."""
    return vl_tasks.finetune_vqa(data_root, out, checkpoint, pretrain_run_id, model, image_size, config, examples)


@flow(name="finetune-nlvr2")
def finetune_nlvr2_flow(data_root: str, out: str, checkpoint: str | None = None, pretrain_run_id: str | None = None,
                        model: str = "xvlm-debug", image_size: int | None = None,
                        config: dict[str, Any] | None = None, examples: int = 3) -> dict[str, Any]:
    """NLVR2: train on train, select on dev, accuracy on dev and test-P (``test1``)."""
    return vl_tasks.finetune_nlvr2(data_root, out, checkpoint, pretrain_run_id, model, image_size, config, examples)


@flow(name="finetune-caption")
def finetune_caption_flow(data_root: str, out: str, checkpoint: str | None = None,
                          pretrain_run_id: str | None = None, model: str = "xvlm-debug",
                          image_size: int | None = None, config: dict[str, Any] | None = None,
                          examples: int = 6) -> dict[str, Any]:
    """COCO captioning (Karpathy): train, select on val CIDEr, BLEU-4/METEOR/ROUGE-L/CIDEr on test."""
    return vl_tasks.finetune_caption(data_root, out, checkpoint, pretrain_run_id, model, image_size, config,
                                     examples)


FLOWS = {"vqa": finetune_vqa_flow, "nlvr2": finetune_nlvr2_flow, "caption": finetune_caption_flow}


def run_downstream(tasks: Sequence[str], data_root: str, out: str, checkpoint: str | None,
                   pretrain_run_id: str | None, model: str = "xvlm-debug",
                   configs: dict[str, dict[str, Any]] | None = None, image_size: int | None = None
                   ) -> dict[str, Any]:
    """Run the named fine-tune flows (subflows when called inside a flow); ``image_size``: the fine-tune
    resolution (the paper's 384; None keeps the checkpoint's)."""
    if unknown := sorted(set(tasks) - set(FLOWS)):
        raise BadInput(f"unknown downstream tasks {unknown}; known: {sorted(FLOWS)}")
    return {t: FLOWS[t](data_root=data_root, out=str(Path(out) / t), checkpoint=checkpoint,
                        pretrain_run_id=pretrain_run_id, model=model, image_size=image_size,
                        config=(configs or {}).get(t))
            for t in tasks}
