"""The start check of a pre-training run: everything that can be wrong before hours of data stages.

``xvlm pretrain --check`` and the ``pretrain`` flow's parameter ``check`` run ``check_run`` and nothing
else; the flow also runs it first, before any stage, so a run that cannot start stops within seconds:

1. the whole resolved ``RunConfig`` (the strict loader already refused unknown keys): the model config
   with its ``model_overrides`` against the data resolution, the corpus recipe, every downstream task's
   config;
2. the start: ``init_bert`` (a Hugging Face BERT-base-uncased folder) and ``init_swin`` (Swin-B 224 window
   7 ImageNet-22K) exist, load, and map onto the model with a clean ``LoadReport`` (every tensor placed,
   only the documented new keys left: cross-attention, projections, heads, temp), or ``from_scratch: true``
   says on purpose that the run starts from random weights;
3. a checkpoint the run would resume from (``work_dir/train/checkpoints/latest``) is readable.

Why the meta device: the check maps BERT-base and Swin-B onto the base model's shapes without allocating
its 216M parameters; the files themselves are read in full (a truncated download must fail here, not at
step 0 on 24 GPUs).

Where the weights come from: relative ``init_*`` paths are relative to the weights root, ``$XVLM_WEIGHTS``
or the ``weights_root`` parameter (``--weights-root``); ``START_WEIGHTS`` names the files the 4m / 16m
presets expect there and where to get them (docs/training.md, "Starting weights").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xvlm.errors import BadInput
from xvlm.models.weights import LoadReport, bert_state, require_clean_start, swin_state
from xvlm.models.xvlm import XVLM
from xvlm.pipeline.config import START_WEIGHTS, VL_TASKS, WEIGHTS_ENV, RunConfig


@dataclass
class StartCheck:
    """What ``check_run`` found: the start's reports, the model, and what a resume would continue."""

    model: str
    num_params: int
    from_scratch: bool
    reports: list[LoadReport] = field(default_factory=list)
    resume: dict[str, Any] | None = None  # {"checkpoint", "step"} when work_dir holds one

    def lines(self) -> list[str]:
        out = [f"config: valid (model {self.model}, {self.num_params / 1e6:.1f}M parameters)"]
        out += [f"start: {r.summary()} sha256 {r.sha256[:16]}" for r in self.reports]
        if self.from_scratch:
            out.append("start: from scratch (from_scratch: true) for every tower without an init_* file")
        out.append(f"resume: step {self.resume['step']} from {self.resume['checkpoint']}" if self.resume
                   else "resume: no checkpoint yet (the run starts at step 0)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "num_params": self.num_params, "from_scratch": self.from_scratch,
                "reports": [r.to_dict() for r in self.reports], "resume": self.resume}


def _missing_line(key: str, path: str) -> str:
    doc = START_WEIGHTS[key]
    root = "" if Path(path).is_absolute() else f" (no weights root: set {WEIGHTS_ENV} or --weights-root)"
    return f"{key}: {path} not found{root}; it is {doc.what}, from {doc.where}"


def check_start_rule(run: RunConfig) -> None:
    """Either both starting files are named, or ``from_scratch: true`` says a random start is meant."""
    named = {k: getattr(run, k) for k in START_WEIGHTS if getattr(run, k)}
    if not run.from_scratch and len(named) < len(START_WEIGHTS):
        unset = [k for k in START_WEIGHTS if k not in named]
        raise BadInput(f"{' and '.join(unset)} not set: the paper starts from BERT-base and Swin-B "
                       f"({', '.join(START_WEIGHTS[k].name for k in unset)} under ${WEIGHTS_ENV}); "
                       "a random start needs from_scratch: true")
    if run.from_scratch and len(named) == len(START_WEIGHTS):
        raise BadInput("from_scratch: true but both init_bert and init_swin are set; drop one or the other")
    missing = [_missing_line(k, p) for k, p in named.items() if not Path(p).expanduser().exists()]
    if missing:
        raise BadInput("; ".join(missing))


def validate_run(run: RunConfig) -> XVLM:
    """Every part of the run config that is only read later, read now; returns the model on the meta device."""
    from xvlm.data.shards.recipe import load_recipe
    from xvlm.train.loop import train_model_config

    mcfg = train_model_config(run)
    load_recipe(run.recipe)
    for task in run.downstream.evaluations:
        if task in VL_TASKS:
            run.downstream.task_config(task)
    with torch.device("meta"):
        return XVLM(mcfg)


def check_run(run: RunConfig, work_dir: str | Path | None = None) -> StartCheck:
    """The start check (module docstring); ``BadInput`` with one line on the first thing that is wrong."""
    model = validate_run(run)
    check_start_rule(run)
    reports: list[LoadReport] = []
    with warnings.catch_warnings():  # timm's resize warns about its own indexing; not the user's problem
        warnings.simplefilter("ignore", UserWarning)
        for key, state in (("init_bert", bert_state), ("init_swin", swin_state)):
            if path := getattr(run, key):
                _, report = state(model, path)
                require_clean_start(report, key)
                reports.append(report)
    return StartCheck(run.model, sum(p.numel() for p in model.parameters()), run.from_scratch, reports,
                      _resume_point(work_dir))


def _resume_point(work_dir: str | Path | None) -> dict[str, Any] | None:
    """The checkpoint a run in ``work_dir`` would resume from, read in full (``BadInput`` if unreadable)."""
    if work_dir is None:
        return None
    from xvlm.train.checkpoint import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(Path(work_dir) / "train" / "checkpoints")
    if path is None:
        return None
    state = load_checkpoint(path)
    return {"checkpoint": str(path), "step": int(state["train_state"]["step"])}
