"""Prefect flows ``finetune-retrieval``, ``finetune-grounding`` and ``evaluate`` (METHOD.md §7).

Each evaluation is one MLflow run tagged with where its weights came from: ``pretrain_run_id`` (the
pre-training run), ``checkpoint`` (URI or path given) and ``checkpoint_step``; the config is logged as
params, metrics per epoch (validation) and once at the end (test), and PNGs of a few queries: the top-5
retrieved texts / images, the predicted (red) and true (green) boxes. Checkpoints are selected on **val**;
test is evaluated once, with the selected weights.

Checkpoint sources: a local file, any MLflow artifact URI (``runs:/<run>/<path>``, ``models:/...``,
``mlflow-artifacts:/...``), or a released reference checkpoint (pass ``model=``; converted by
``xvlm.models.weights``). ``downstream_stage`` is the stage the pre-training DAG ends with.

Data layout: the real file names under ``raw_root`` (the sample corpus writes them):
``karpathy/{coco_karpathy,flickr30k}_{train,val,test}.json`` with images under ``coco2014/`` or
``flickr30k/``; ``refcoco+/refcoco+_{train,val,testA,testB}.json`` + ``refs(unc).json|.p`` +
``instances.json`` with images under ``coco2014/``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import torch
from prefect import flow, get_run_logger, task
from torch.utils.data import DataLoader

from flows.tracking import FinetuneMlflowCallback, experiment_id
from xvlm.data.downstream.grounding import GroundingSplit, read_refcoco
from xvlm.data.downstream.images import load_rgb
from xvlm.data.downstream.retrieval import RetrievalSplit, read_albef
from xvlm.eval.batches import GroundingTrainSet, RetrievalTrainSet, grounding_collate, retrieval_collate
from xvlm.eval.checkpoint import LoadedCheckpoint, load_checkpoint, save_eval_checkpoint
from xvlm.eval.finetune import FinetuneConfig, finetune, resolve_device
from xvlm.eval.grounding import GroundingResult, evaluate_grounding, grounding_losses
from xvlm.eval.retrieval import RetrievalEvalConfig, RetrievalResult, evaluate_retrieval, retrieval_losses
from xvlm.tokenizer import build_tokenizer

EXPERIMENT = "xvlm-eval"
RETRIEVAL_FILES = {"coco": ("karpathy/coco_karpathy_{}.json", "coco2014"),
                   "flickr30k": ("karpathy/flickr30k_{}.json", "flickr30k")}


# --------------------------------------------------------------------------------------------------------
# Data and checkpoints
# --------------------------------------------------------------------------------------------------------


def retrieval_split(raw_root: str | Path, dataset: str, split: str) -> RetrievalSplit:
    if dataset not in RETRIEVAL_FILES:
        raise ValueError(f"dataset must be one of {sorted(RETRIEVAL_FILES)}, got {dataset!r}")
    pattern, images = RETRIEVAL_FILES[dataset]
    root = Path(raw_root)
    return read_albef(root / pattern.format(split), root / images, name=f"{dataset}_{split}")


def grounding_split(raw_root: str | Path, split: str) -> GroundingSplit:
    root = Path(raw_root) / "refcoco+"
    refs = root / "refs(unc).json" if (root / "refs(unc).json").is_file() else root / "refs(unc).p"
    return read_refcoco(root / f"refcoco+_{split}.json", refs, root / "instances.json", Path(raw_root) / "coco2014")


@task(name="resolve-checkpoint", retries=2, retry_delay_seconds=2)
def resolve_checkpoint(uri: str) -> str:
    """A local checkpoint file for ``uri`` (downloaded from MLflow when it is an artifact URI)."""
    if Path(uri).is_file():
        return str(Path(uri).absolute())
    if "://" not in uri and ":/" not in uri:
        raise FileNotFoundError(f"checkpoint {uri!r}: no such file and not an MLflow URI")
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="ckpt-")))
    if local.is_dir():
        found = sorted(p for ext in ("*.pt", "*.pth", "*.bin", "*.safetensors") for p in local.rglob(ext))
        if len(found) != 1:
            raise FileNotFoundError(f"{uri}: expected exactly one checkpoint file in the artifact, got "
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


# --------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------


def retrieval_figures(split: RetrievalSplit, result: RetrievalResult, n_queries: int = 3) -> dict[str, Any]:
    """Top-5 texts for a few query images (TR) and top-5 images for a few query texts (IR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    fig, axes = plt.subplots(n_queries, 2, figsize=(10, 3 * n_queries), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 3]})
    for q in range(min(n_queries, len(split.images))):
        axes[q, 0].imshow(load_rgb(split.image_path(q)))
        axes[q, 0].set_axis_off()
        top = result.score_i2t[q].topk(min(5, len(split.texts))).indices.tolist()
        lines = [f"{r + 1}. {'+' if split.txt2img[t] == q else '-'} {textwrap.shorten(split.texts[t], 70)}"
                 for r, t in enumerate(top)]
        axes[q, 1].text(0, 0.5, "\n".join(lines), va="center", family="monospace", fontsize=8)
        axes[q, 1].set_axis_off()
    fig.suptitle("text retrieval: top-5 texts per query image (+ = ground truth)")
    figs["tr_top5.png"] = fig
    img2txt = split.img2txt
    queries = [img2txt[i][0] for i in range(min(n_queries, len(split.images)))]
    fig, axes = plt.subplots(len(queries), 5, figsize=(12, 2.8 * len(queries)), squeeze=False)
    for row, t in enumerate(queries):
        top = result.score_t2i[t].topk(min(5, len(split.images))).indices.tolist()
        for c, i in enumerate(top):
            ax = axes[row, c]
            ax.imshow(load_rgb(split.image_path(i)))
            ax.set_xticks([])
            ax.set_yticks([])
            ok = i == split.txt2img[t]
            for s in ax.spines.values():
                s.set_color("green" if ok else "red")
                s.set_linewidth(4)
        axes[row, 0].set_title(textwrap.shorten(split.texts[t], 90), loc="left", fontsize=9)
    fig.suptitle("image retrieval: top-5 images per query text (green = ground truth)")
    figs["ir_top5.png"] = fig
    return figs


def grounding_figure(split: GroundingSplit, result: GroundingResult, n: int = 6) -> Any:
    """A few expressions: true box green, predicted box red, IoU in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(n, len(split.samples))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    for k in range(n):
        s, ax = split.samples[k], axes[0, k]
        ax.imshow(load_rgb(split.image_path(s)))
        for box, colour in ((result.gt_xywh[k], "lime"), (result.pred_xywh[k], "red")):
            x, y, w, h = (float(v) for v in box)
            ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=2))
        ax.set_title(f"{textwrap.shorten(s.text, 40)}\nIoU {float(result.iou[k]):.2f}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle("grounding: true (green) vs predicted (red)")
    return fig


def _log_figures(figs: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    for name, fig in figs.items():
        mlflow.log_figure(fig, f"figures/{name}")
        plt.close(fig)


# --------------------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FinetuneOptions:
    """Recipe knobs shared by both fine-tuning flows (defaults = the reference recipe, METHOD.md §7)."""

    epochs: int = 10
    lr: float = 3e-5
    batch_size: int = 20
    max_steps: int | None = None
    image_size: int | None = 384  # None keeps the checkpoint's resolution
    vision_lr_mult: float = 1.0
    augment: bool = True
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto: the first CUDA device when there is one, else the CPU


def _load(checkpoint: str, model: str | None, image_size: int | None) -> tuple[LoadedCheckpoint, str]:
    path = resolve_checkpoint(checkpoint)
    return load_checkpoint(path, model=model, image_size=image_size), path


def _start_run(out: str, experiment: str, name: str, tags: dict[str, str], params: dict[str, Any]) -> Any:
    import mlflow

    # experiment_id on the run, not mlflow.set_experiment: that is process-global, and a pre-training run
    # resumed later in the same process (``pretrain`` called twice) must not find another active experiment
    run = mlflow.start_run(experiment_id=experiment_id(experiment, Path(out)), run_name=name)
    mlflow.set_tags({**tags, "stage": name})
    mlflow.log_params({k: str(v) for k, v in params.items()})
    return run


@flow(name="finetune-retrieval")
def finetune_retrieval(checkpoint: str, raw_root: str, out: str, dataset: str = "coco", model: str | None = None,
                       options: FinetuneOptions | None = None, k: int = 128, pretrain_run_id: str | None = None,
                       experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Fine-tune ITC + ITM on ``dataset`` train, select on val ``r_mean``, report test once."""
    import mlflow

    opt = options or FinetuneOptions()
    dev = resolve_device(opt.device)
    torch.manual_seed(opt.seed)
    ckpt, _ = _load(checkpoint, model, opt.image_size)
    net, tok = ckpt.model, build_tokenizer()
    train, val, test = (retrieval_split(raw_root, dataset, s) for s in ("train", "val", "test"))
    ecfg = RetrievalEvalConfig(k=k, num_workers=opt.num_workers)
    tags = lineage(checkpoint, ckpt, pretrain_run_id)
    loader = DataLoader(RetrievalTrainSet(train, net.cfg, augment=opt.augment, cache=not opt.augment),
                        batch_size=opt.batch_size, shuffle=True, drop_last=len(train.texts) > opt.batch_size,
                        collate_fn=retrieval_collate(tok), num_workers=opt.num_workers,
                        generator=torch.Generator().manual_seed(opt.seed))
    with _start_run(out, experiment, f"finetune-retrieval-{dataset}", tags,
                    {**dataclasses.asdict(opt), "dataset": dataset, "k": k, "model": net.cfg.name}) as run:
        mlflow.log_dict(net.cfg.to_dict(), "model_config.json")
        result = finetune(net, retrieval_losses, loader,
                          FinetuneConfig(epochs=opt.epochs, lr=opt.lr, max_steps=opt.max_steps, select="r_mean",
                                         seed=opt.seed),
                          evaluate=lambda m: evaluate_retrieval(m, val, tok, ecfg, device=dev).metrics,
                          callback=FinetuneMlflowCallback(), lr_mults={"vision_encoder.": opt.vision_lr_mult},
                          device=dev)
        res = evaluate_retrieval(net, test, tok, ecfg, device=dev)  # test: once, with the val-selected weights
        mlflow.log_metrics({f"test/{m}": v for m, v in res.metrics.items()})
        mlflow.log_metrics({f"test_itc/{m}": v for m, v in res.itc_metrics.items()})
        mlflow.log_metrics({"best_epoch": float(result.best_epoch or 0), "steps": float(result.steps)})
        _log_figures(retrieval_figures(test, res))
        ck = save_eval_checkpoint(Path(out) / f"finetune-retrieval-{dataset}-{run.info.run_id}.pt", net,
                                  task="retrieval", step=result.steps, source=checkpoint,
                                  extra={"pretrain_run_id": tags["pretrain_run_id"]})
        mlflow.log_artifact(str(ck), "checkpoint")
        get_run_logger().info("retrieval %s test: %s", dataset, _fmt(res.metrics))
        return {"run_id": run.info.run_id, "val": result.best_metrics, "test": res.metrics,
                "test_itc": res.itc_metrics, "checkpoint": str(ck)}


@flow(name="finetune-grounding")
def finetune_grounding(checkpoint: str, raw_root: str, out: str, model: str | None = None,
                       options: FinetuneOptions | None = None, pretrain_run_id: str | None = None,
                       experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Fine-tune the bbox head (L1 + GIoU) on RefCOCO+ train, select on val, report val/testA/testB."""
    import mlflow

    opt = options or FinetuneOptions()
    dev = resolve_device(opt.device)
    torch.manual_seed(opt.seed)
    ckpt, _ = _load(checkpoint, model, opt.image_size)
    net, tok = ckpt.model, build_tokenizer()
    train, val = grounding_split(raw_root, "train"), grounding_split(raw_root, "val")
    tests = [grounding_split(raw_root, s) for s in ("testA", "testB")]
    tags = lineage(checkpoint, ckpt, pretrain_run_id)
    loader = DataLoader(GroundingTrainSet(train, net.cfg, augment=opt.augment, seed=opt.seed),
                        batch_size=opt.batch_size, shuffle=True, drop_last=len(train.samples) > opt.batch_size,
                        collate_fn=grounding_collate(tok), generator=torch.Generator().manual_seed(opt.seed))
    with _start_run(out, experiment, "finetune-grounding", tags,
                    {**dataclasses.asdict(opt), "model": net.cfg.name}) as run:
        result = finetune(net, grounding_losses, loader,
                          FinetuneConfig(epochs=opt.epochs, lr=opt.lr, max_steps=opt.max_steps,
                                         select="acc_iou50", seed=opt.seed),
                          evaluate=lambda m: evaluate_grounding(m, val, tok, device=dev).metrics,
                          callback=FinetuneMlflowCallback(), lr_mults={"vision_encoder.": opt.vision_lr_mult},
                          device=dev)
        metrics = _grounding_report(net, tok, [val, *tests], dev)
        mlflow.log_metrics({"best_epoch": float(result.best_epoch or 0), "steps": float(result.steps)})
        ck = save_eval_checkpoint(Path(out) / f"finetune-grounding-{run.info.run_id}.pt", net, task="grounding",
                                  step=result.steps, source=checkpoint,
                                  extra={"pretrain_run_id": tags["pretrain_run_id"]})
        mlflow.log_artifact(str(ck), "checkpoint")
        get_run_logger().info("grounding: %s", _fmt(metrics))
        return {"run_id": run.info.run_id, "metrics": metrics, "checkpoint": str(ck)}


def _grounding_report(net: Any, tok: Any, splits: list[GroundingSplit],
                      device: torch.device | str = "cpu") -> dict[str, float]:
    """Acc@0.5 per split (logged as ``<split>/acc_iou50``) and one box figure per split."""
    import mlflow

    metrics: dict[str, float] = {}
    for sp in splits:
        res = evaluate_grounding(net, sp, tok, device=device)
        metrics[f"{sp.name.split('_')[-1]}/acc_iou50"] = res.metrics["acc_iou50"]
        metrics[f"{sp.name.split('_')[-1]}/miou"] = res.metrics["miou"]
        _log_figures({f"boxes_{sp.name.split('_')[-1]}.png": grounding_figure(sp, res)})
    mlflow.log_metrics(metrics)
    return metrics


@flow(name="evaluate")
def evaluate(checkpoint: str, raw_root: str, out: str, tasks: tuple[str, ...] = ("retrieval", "grounding"),
             dataset: str = "coco", split: str = "test", model: str | None = None, image_size: int | None = None,
             k: int = 128, pretrain_run_id: str | None = None, experiment: str = EXPERIMENT,
             device: str = "auto") -> dict[str, Any]:
    """Evaluate a checkpoint as it is (zero-shot from pre-training, or a fine-tuned one); one run per task."""
    import mlflow

    dev = resolve_device(device)
    ckpt, _ = _load(checkpoint, model, image_size)
    net, tok = ckpt.model.to(dev), build_tokenizer()
    tags = lineage(checkpoint, ckpt, pretrain_run_id)
    out_d: dict[str, Any] = {}
    if "retrieval" in tasks:
        sp = retrieval_split(raw_root, dataset, split)
        with _start_run(out, experiment, f"evaluate-retrieval-{dataset}", tags,
                        {"dataset": dataset, "split": split, "k": k, "model": net.cfg.name}) as run:
            res = evaluate_retrieval(net, sp, tok, RetrievalEvalConfig(k=k), device=dev)
            mlflow.log_metrics({f"{split}/{m}": v for m, v in res.metrics.items()})
            mlflow.log_metrics({f"{split}_itc/{m}": v for m, v in res.itc_metrics.items()})
            mlflow.log_metrics({f"time/{m}": v for m, v in res.timings.items()})
            _log_figures(retrieval_figures(sp, res))
            out_d["retrieval"] = {"run_id": run.info.run_id, "metrics": res.metrics, "itc_metrics": res.itc_metrics}
    if "grounding" in tasks:
        with _start_run(out, experiment, "evaluate-grounding", tags, {"model": net.cfg.name}) as run:
            metrics = _grounding_report(net, tok, [grounding_split(raw_root, s) for s in ("val", "testA", "testB")],
                                        dev)
            out_d["grounding"] = {"run_id": run.info.run_id, "metrics": metrics}
    return out_d


@flow(name="downstream")
def downstream_stage(checkpoint: str, raw_root: str, out: str, pretrain_run_id: str | None = None,
                     model: str | None = None, options: FinetuneOptions | None = None, k: int = 16,
                     experiment: str = EXPERIMENT, tasks: tuple[str, ...] = ("retrieval", "grounding"),
                     dataset: str = "coco") -> dict[str, Any]:
    """The pre-training DAG's last stage: zero-shot evaluation of ``tasks``, then their fine-tunes
    (val-selected, test once). ``tasks`` is a subset of ``("retrieval", "grounding")``."""
    unknown = sorted(set(tasks) - {"retrieval", "grounding"})
    if unknown or not tasks:
        raise ValueError(f"downstream_stage tasks must be a non-empty subset of ('retrieval', 'grounding'), "
                         f"got {tuple(tasks)}")
    zero = evaluate(checkpoint, raw_root, out, tasks=tuple(tasks), dataset=dataset, model=model, k=k,
                    pretrain_run_id=pretrain_run_id, experiment=experiment,
                    device=(options or FinetuneOptions()).device)
    result: dict[str, Any] = {"zero_shot": zero}
    if "retrieval" in tasks:
        result["retrieval"] = finetune_retrieval(checkpoint, raw_root, out, dataset=dataset, model=model,
                                                 options=options, k=k, pretrain_run_id=pretrain_run_id,
                                                 experiment=experiment)
    if "grounding" in tasks:
        result["grounding"] = finetune_grounding(checkpoint, raw_root, out, model=model, options=options,
                                                 pretrain_run_id=pretrain_run_id, experiment=experiment)
    return result


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
    return "\n".join(f"{label + ':':<45}{_fmt(m)}" + (f"  [mlflow run {run}]" if run else "")
                     for label, m, run in rows)


def _fmt(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if k.endswith(("r1", "r_mean", "acc_iou50"))]
    return ", ".join(f"{k} {metrics[k]:.1f}" for k in keys)
