"""Prefect flows of the evaluation (METHOD.md §7); the work lives in ``xvlm.pipeline``.

- ``evaluation``: the pre-training DAG's last stage: skipped when this checkpoint was already evaluated
  with the same settings (``xvlm.pipeline.evaluation``), else ``downstream`` for retrieval / grounding and
  the ``finetune-vqa|nlvr2|caption`` flows (flows/finetune_vl.py), every run tagged ``pretrain_run_id``.
- ``downstream``: zero-shot evaluation, then the fine-tunes (val-selected, test once).
- ``evaluate``, ``finetune-retrieval``, ``finetune-grounding``: one MLflow run per task
  (``xvlm.pipeline.retrieval_grounding``: tags, params, metrics, figures, checkpoints).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.finetune_vl import run_downstream
from flows.retry import IO_RETRIES
from xvlm.pipeline import retrieval_grounding as rg
from xvlm.pipeline.config import DEFAULT_K, RG_TASKS, DownstreamConfig, FinetuneOptions
from xvlm.pipeline.evaluation import finish_evaluation, plan_evaluation

EXPERIMENT = rg.EXPERIMENT


@task(name="resolve-checkpoint", **IO_RETRIES)
def resolve_checkpoint(uri: str) -> str:
    """A local checkpoint file for ``uri`` (downloaded from MLflow when it is an artifact URI)."""
    return rg.resolve_checkpoint(uri)


@flow(name="finetune-retrieval")
def finetune_retrieval(checkpoint: str, raw_root: str, out: str, dataset: str = "coco", model: str | None = None,
                       options: FinetuneOptions | None = None, k: int = DEFAULT_K,
                       pretrain_run_id: str | None = None, experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Fine-tune ITC + ITM on ``dataset`` train, select on val ``r_mean``, report test once."""
    return rg.finetune_retrieval(resolve_checkpoint(checkpoint), raw_root, out, dataset, model, options, k,
                                 pretrain_run_id, experiment, source=checkpoint)


@flow(name="finetune-grounding")
def finetune_grounding(checkpoint: str, raw_root: str, out: str, model: str | None = None,
                       options: FinetuneOptions | None = None, pretrain_run_id: str | None = None,
                       experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Fine-tune the bbox head (L1 + GIoU) on RefCOCO+ train, select on val, report val/testA/testB."""
    return rg.finetune_grounding(resolve_checkpoint(checkpoint), raw_root, out, model, options, pretrain_run_id,
                                 experiment, source=checkpoint)


@flow(name="evaluate")
def evaluate(checkpoint: str, raw_root: str, out: str, tasks: tuple[str, ...] = RG_TASKS,
             dataset: str = "coco", split: str = "test", model: str | None = None, image_size: int | None = None,
             k: int = DEFAULT_K, pretrain_run_id: str | None = None, experiment: str = EXPERIMENT,
             device: str = "auto") -> dict[str, Any]:
    """Evaluate a checkpoint as it is (zero-shot from pre-training, or a fine-tuned one); one run per task."""
    return rg.evaluate_checkpoint(resolve_checkpoint(checkpoint), raw_root, out, tasks, dataset, split, model,
                                  image_size, k, pretrain_run_id, experiment, device, source=checkpoint)


@flow(name="downstream")
def downstream_stage(checkpoint: str, raw_root: str, out: str, pretrain_run_id: str | None = None,
                     model: str | None = None, options: FinetuneOptions | None = None, k: int = DEFAULT_K,
                     experiment: str = EXPERIMENT, tasks: tuple[str, ...] = RG_TASKS,
                     dataset: str = "coco") -> dict[str, Any]:
    """Zero-shot evaluation of ``tasks`` (a subset of retrieval, grounding), then their fine-tunes."""
    tasks = rg.check_tasks(tasks)
    common = {"model": model, "pretrain_run_id": pretrain_run_id, "experiment": experiment}
    result: dict[str, Any] = {"zero_shot": evaluate(checkpoint, raw_root, out, tasks=tasks, dataset=dataset, k=k,
                                                    device=(options or FinetuneOptions()).device, **common)}
    if "retrieval" in tasks:
        result["retrieval"] = finetune_retrieval(checkpoint, raw_root, out, dataset=dataset, options=options, k=k,
                                                 **common)
    if "grounding" in tasks:
        result["grounding"] = finetune_grounding(checkpoint, raw_root, out, options=options, **common)
    return result


@flow(name="evaluation")
def evaluation(checkpoint: str, raw_root: str, work_dir: str, pretrain_run_id: str | None, model: str,
               settings: DownstreamConfig) -> dict[str, Any]:
    """The pre-training DAG's last stage. Returns the flows' results plus ``key``, ``out`` and ``skipped``
    (True when an earlier run with the same key was reused)."""
    plan = plan_evaluation(checkpoint, raw_root, work_dir, pretrain_run_id, model, settings)
    if plan.reused:
        return plan.result
    results: dict[str, Any] = {}
    if plan.rg_tasks:
        results.update(downstream_stage(checkpoint, raw_root, str(plan.out), pretrain_run_id=pretrain_run_id,
                                        model=model, options=settings.finetune, k=settings.k, tasks=plan.rg_tasks,
                                        dataset=settings.dataset))
    if plan.vl_tasks:
        results["vl"] = run_downstream(plan.vl_tasks, raw_root, str(plan.out), checkpoint, pretrain_run_id,
                                       model=model, configs=settings.tasks, image_size=settings.finetune.image_size)
    return finish_evaluation(plan, results)
