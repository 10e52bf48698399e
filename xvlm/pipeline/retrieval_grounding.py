"""Retrieval and grounding evaluation (METHOD.md §7): zero-shot, and fine-tune then test, one MLflow run each.

Each run is tagged with where its weights came from: ``pretrain_run_id`` (the pre-training run),
``checkpoint`` (URI or path given), ``checkpoint_step`` and ``checkpoint_kind``; the settings are logged
as params, metrics per epoch (validation) and once at the end (test), and PNGs of a few queries
(``xvlm.pipeline.figures``). Checkpoints are selected on **val**; test is evaluated once, with the
selected weights.

Checkpoint sources: a local file, any MLflow artifact URI (``runs:/<run>/<path>``, ``models:/...``,
``mlflow-artifacts:/...``), or a released reference checkpoint (pass ``model=``; converted by
``xvlm.models.weights``).

Data layout: the real file names under ``raw_root`` (the sample corpus writes them):
``karpathy/{coco_karpathy,flickr30k}_{train,val,test}.json`` with images under ``coco2014/`` or
``flickr30k/``; ``refcoco+/refcoco+_{train,val,testA,testB}.json`` + ``refs(unc).json|.p`` +
``instances.json`` with images under ``coco2014/``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from xvlm import tracking
from xvlm.data.downstream.grounding import GroundingSplit, read_refcoco
from xvlm.data.downstream.retrieval import RetrievalSplit, read_albef
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.batches import GroundingTrainSet, RetrievalTrainSet, grounding_collate, retrieval_collate
from xvlm.eval.checkpoint import LoadedCheckpoint, load_checkpoint, save_eval_checkpoint
from xvlm.eval.finetune import FinetuneConfig, finetune, resolve_device, shard_sampler
from xvlm.eval.grounding import evaluate_grounding, grounding_losses
from xvlm.eval.retrieval import RetrievalEvalConfig, evaluate_retrieval, retrieval_losses
from xvlm.pipeline.config import DEFAULT_K, RG_TASKS, FinetuneOptions
from xvlm.pipeline.figures import grounding_figure, retrieval_figures
from xvlm.pipeline.finetune_launch import relaunch
from xvlm.tokenizer import build_tokenizer

log = logging.getLogger(__name__)
EXPERIMENT = "xvlm-eval"
RETRIEVAL_FILES = {"coco": ("karpathy/coco_karpathy_{}.json", "coco2014"),
                   "flickr30k": ("karpathy/flickr30k_{}.json", "flickr30k")}


# ------------------------------------------------------------------------------------- data and weights
def retrieval_split(raw_root: str | Path, dataset: str, split: str) -> RetrievalSplit:
    if dataset not in RETRIEVAL_FILES:
        raise BadInput(f"dataset must be one of {sorted(RETRIEVAL_FILES)}, got {dataset!r}")
    pattern, images = RETRIEVAL_FILES[dataset]
    root = Path(raw_root)
    return read_albef(root / pattern.format(split), root / images, name=f"{dataset}_{split}")


def grounding_split(raw_root: str | Path, split: str) -> GroundingSplit:
    root = Path(raw_root) / "refcoco+"
    refs = root / "refs(unc).json" if (root / "refs(unc).json").is_file() else root / "refs(unc).p"
    return read_refcoco(root / f"refcoco+_{split}.json", refs, root / "instances.json", Path(raw_root) / "coco2014")


def resolve_checkpoint(uri: str) -> str:
    """A local checkpoint file for ``uri`` (downloaded from MLflow when it is an artifact URI)."""
    if Path(uri).is_file():
        return str(Path(uri).absolute())
    if "://" not in uri and ":/" not in uri:
        raise MissingInput(f"checkpoint {uri!r}: no such file and not an MLflow URI")
    local = tracking.download_artifact(uri)
    if local.is_dir():
        found = sorted(p for ext in ("*.pt", "*.pth", "*.bin", "*.safetensors") for p in local.rglob(ext))
        if len(found) != 1:
            raise MissingInput(f"{uri}: expected exactly one checkpoint file in the artifact, got "
                               f"{[str(p.relative_to(local)) for p in found]}")
        local = found[0]
    return str(local)


def lineage(uri: str, ckpt: LoadedCheckpoint, pretrain_run_id: str | None) -> dict[str, str]:
    """MLflow tags linking a run to its pre-training run and checkpoint."""
    run = pretrain_run_id or str(ckpt.config.get("pretrain_run_id") or "")
    if not run and uri.startswith("runs:/"):
        run = uri.removeprefix("runs:/").split("/", 1)[0]
    return {"pretrain_run_id": run or "unknown", "checkpoint": uri,
            "checkpoint_step": str(ckpt.step if ckpt.step is not None else "unknown"),
            "checkpoint_kind": ckpt.kind}


def _load(checkpoint: str, model: str | None, image_size: int | None) -> LoadedCheckpoint:
    return load_checkpoint(resolve_checkpoint(checkpoint), model=model, image_size=image_size)


def _finetune_config(opt: FinetuneOptions, select: str) -> FinetuneConfig:
    return FinetuneConfig(epochs=opt.epochs, lr=opt.lr, max_steps=opt.max_steps, select=select, seed=opt.seed,
                          precision=opt.precision, activation_checkpointing=tuple(opt.activation_checkpointing))


# ------------------------------------------------------------------------------------- fine-tunes
def finetune_retrieval(checkpoint: str, raw_root: str, out: str, dataset: str = "coco", model: str | None = None,
                       options: FinetuneOptions | None = None, k: int = DEFAULT_K,
                       pretrain_run_id: str | None = None, experiment: str = EXPERIMENT,
                       source: str | None = None) -> dict[str, Any]:
    """Fine-tune ITC + ITM on ``dataset`` train, select on val ``r_mean``, report test once.
    ``source``: what the user named (an MLflow URI) when ``checkpoint`` is its downloaded copy."""
    opt = options or FinetuneOptions()
    if (ranks := relaunch("retrieval", {**locals(), "options": opt}, opt.devices)) is not None:
        return ranks
    dev = resolve_device(opt.device)
    torch.manual_seed(opt.seed)
    ckpt = _load(checkpoint, model, opt.image_size)
    net, tok = ckpt.model, build_tokenizer()
    train, val, test = (retrieval_split(raw_root, dataset, s) for s in ("train", "val", "test"))
    ecfg = RetrievalEvalConfig(k=k, num_workers=opt.num_workers)
    tags = lineage(source or checkpoint, ckpt, pretrain_run_id)
    data = RetrievalTrainSet(train, net.cfg, augment=opt.augment, cache=not opt.augment)
    sampler = shard_sampler(data, opt.seed)  # torchrun: this rank's shard
    loader = DataLoader(data, batch_size=opt.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train.texts) > opt.batch_size, collate_fn=retrieval_collate(tok),
                        num_workers=opt.num_workers, generator=torch.Generator().manual_seed(opt.seed))
    with tracking.start_run(experiment, Path(out), f"finetune-retrieval-{dataset}", tags,
                            {**dataclasses.asdict(opt), "dataset": dataset, "k": k, "model": net.cfg.name}) as run_id:
        tracking.log_dict(net.cfg.to_dict(), "model_config.json")
        result = finetune(net, retrieval_losses, loader, _finetune_config(opt, "r_mean"),
                          evaluate=lambda m: evaluate_retrieval(m, val, tok, ecfg, device=dev).metrics,
                          callback=tracking.FinetuneMlflowCallback(),
                          lr_mults={"vision_encoder.": opt.vision_lr_mult}, device=dev)
        res = evaluate_retrieval(net, test, tok, ecfg, device=dev)  # test: once, with the val-selected weights
        tracking.log_metrics({f"test/{m}": v for m, v in res.metrics.items()})
        tracking.log_metrics({f"test_itc/{m}": v for m, v in res.itc_metrics.items()})
        tracking.log_metrics({"best_epoch": float(result.best_epoch or 0), "steps": float(result.steps)})
        tracking.log_figures(retrieval_figures(test, res))
        ck = save_eval_checkpoint(Path(out) / f"finetune-retrieval-{dataset}-{run_id}.pt", net,
                                  task="retrieval", step=result.steps, source=source or checkpoint,
                                  extra={"pretrain_run_id": tags["pretrain_run_id"],
                                         "results": {f"test/{m}": v for m, v in res.metrics.items()}},
                                  start=ckpt.info)
        tracking.log_artifact(ck, "checkpoint")
        log.info("retrieval %s test: %s", dataset, format_metrics(res.metrics))
        return {"run_id": run_id, "val": result.best_metrics, "test": res.metrics,
                "test_itc": res.itc_metrics, "checkpoint": str(ck)}


def finetune_grounding(checkpoint: str, raw_root: str, out: str, model: str | None = None,
                       options: FinetuneOptions | None = None, pretrain_run_id: str | None = None,
                       experiment: str = EXPERIMENT, source: str | None = None) -> dict[str, Any]:
    """Fine-tune the bbox head (L1 + GIoU) on RefCOCO+ train, select on val, report val/testA/testB."""
    opt = options or FinetuneOptions()
    if (ranks := relaunch("grounding", {**locals(), "options": opt}, opt.devices)) is not None:
        return ranks
    dev = resolve_device(opt.device)
    torch.manual_seed(opt.seed)
    ckpt = _load(checkpoint, model, opt.image_size)
    net, tok = ckpt.model, build_tokenizer()
    train, val = grounding_split(raw_root, "train"), grounding_split(raw_root, "val")
    tests = [grounding_split(raw_root, s) for s in ("testA", "testB")]
    tags = lineage(source or checkpoint, ckpt, pretrain_run_id)
    data = GroundingTrainSet(train, net.cfg, augment=opt.augment, seed=opt.seed)
    sampler = shard_sampler(data, opt.seed)
    loader = DataLoader(data, batch_size=opt.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train.samples) > opt.batch_size, collate_fn=grounding_collate(tok),
                        generator=torch.Generator().manual_seed(opt.seed))
    with tracking.start_run(experiment, Path(out), "finetune-grounding", tags,
                            {**dataclasses.asdict(opt), "model": net.cfg.name}) as run_id:
        result = finetune(net, grounding_losses, loader, _finetune_config(opt, "acc_iou50"),
                          evaluate=lambda m: evaluate_grounding(m, val, tok, device=dev).metrics,
                          callback=tracking.FinetuneMlflowCallback(),
                          lr_mults={"vision_encoder.": opt.vision_lr_mult}, device=dev)
        metrics = grounding_report(net, tok, [val, *tests], dev)
        tracking.log_metrics({"best_epoch": float(result.best_epoch or 0), "steps": float(result.steps)})
        ck = save_eval_checkpoint(Path(out) / f"finetune-grounding-{run_id}.pt", net, task="grounding",
                                  step=result.steps, source=source or checkpoint,
                                  extra={"pretrain_run_id": tags["pretrain_run_id"], "results": metrics},
                                  start=ckpt.info)
        tracking.log_artifact(ck, "checkpoint")
        log.info("grounding: %s", format_metrics(metrics))
        return {"run_id": run_id, "metrics": metrics, "checkpoint": str(ck)}


def grounding_report(net: Any, tok: Any, splits: list[GroundingSplit],
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """Acc@0.5 per split (logged as ``<split>/acc_iou50``) and one box figure per split, in the active run."""
    metrics: dict[str, float] = {}
    for sp in splits:
        res = evaluate_grounding(net, sp, tok, device=device)
        name = sp.name.split("_")[-1]
        metrics[f"{name}/acc_iou50"] = res.metrics["acc_iou50"]
        metrics[f"{name}/miou"] = res.metrics["miou"]
        tracking.log_figures({f"boxes_{name}.png": grounding_figure(sp, res)})
    tracking.log_metrics(metrics)
    return metrics


# ------------------------------------------------------------------------------------- zero-shot
def evaluate_checkpoint(checkpoint: str, raw_root: str, out: str, tasks: tuple[str, ...] = RG_TASKS,
                        dataset: str = "coco", split: str = "test", model: str | None = None,
                        image_size: int | None = None, k: int = DEFAULT_K, pretrain_run_id: str | None = None,
                        experiment: str = EXPERIMENT, device: str = "auto",
                        source: str | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint as it is (zero-shot from pre-training, or a fine-tuned one); one run per task."""
    dev = resolve_device(device)
    ckpt = _load(checkpoint, model, image_size)
    net, tok = ckpt.model.to(dev), build_tokenizer()
    tags = lineage(source or checkpoint, ckpt, pretrain_run_id)
    out_d: dict[str, Any] = {}
    if "retrieval" in tasks:
        sp = retrieval_split(raw_root, dataset, split)
        with tracking.start_run(experiment, Path(out), f"evaluate-retrieval-{dataset}", tags,
                                {"dataset": dataset, "split": split, "k": k, "model": net.cfg.name}) as run_id:
            res = evaluate_retrieval(net, sp, tok, RetrievalEvalConfig(k=k), device=dev)
            tracking.log_metrics({f"{split}/{m}": v for m, v in res.metrics.items()})
            tracking.log_metrics({f"{split}_itc/{m}": v for m, v in res.itc_metrics.items()})
            tracking.log_metrics({f"time/{m}": v for m, v in res.timings.items()})
            tracking.log_figures(retrieval_figures(sp, res))
            out_d["retrieval"] = {"run_id": run_id, "metrics": res.metrics, "itc_metrics": res.itc_metrics}
    if "grounding" in tasks:
        with tracking.start_run(experiment, Path(out), "evaluate-grounding", tags, {"model": net.cfg.name}) as run_id:
            metrics = grounding_report(net, tok, [grounding_split(raw_root, s) for s in ("val", "testA", "testB")],
                                       dev)
            out_d["grounding"] = {"run_id": run_id, "metrics": metrics}
    return out_d


def check_tasks(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """``tasks`` when it is a non-empty subset of ``RG_TASKS``; ``BadInput`` otherwise."""
    if sorted(set(tasks) - set(RG_TASKS)) or not tasks:
        raise BadInput(f"retrieval/grounding tasks must be a non-empty subset of {RG_TASKS}, got {tuple(tasks)}")
    return tuple(tasks)


# ------------------------------------------------------------------------------------- printed lines
def format_downstream(result: dict[str, Any]) -> str:
    """The lines ``make demo`` prints: retrieval and grounding numbers with their MLflow run ids
    (zero-shot first, then fine-tuned; a task the stage did not run is left out)."""
    zero = result.get("zero_shot", {})
    rows: list[tuple[str, dict[str, float], str | None]] = []
    if "retrieval" in zero:
        rows.append(("retrieval (zero-shot, test, ITM re-ranked)", zero["retrieval"]["metrics"],
                     zero["retrieval"]["run_id"]))
    if "grounding" in zero:
        rows.append(("grounding (zero-shot, Acc@IoU>=0.5)", zero["grounding"]["metrics"],
                     zero["grounding"]["run_id"]))
    if "retrieval" in result:
        r = result["retrieval"]
        rows += [("retrieval (fine-tuned, test, ITM re-ranked)", r["test"], r["run_id"]),
                 ("retrieval (fine-tuned, test, ITC only)", r["test_itc"], None)]
    if "grounding" in result:
        rows.append(("grounding (fine-tuned, Acc@IoU>=0.5)", result["grounding"]["metrics"],
                     result["grounding"]["run_id"]))
    return "\n".join(f"{label + ':':<45}{format_metrics(m)}" + (f"  [mlflow run {run}]" if run else "")
                     for label, m, run in rows)


def format_metrics(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if k.endswith(("r1", "r_mean", "acc_iou50"))]
    return ", ".join(f"{k} {metrics[k]:.1f}" for k in keys)
