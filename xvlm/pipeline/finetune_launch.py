"""The downstream fine-tunes on several devices: one ``torchrun`` per fine-tune, the training stage's launcher.

Each task function (``FUNCTIONS``) starts with ``relaunch(task, its arguments, devices)``: for one device it
runs in this process; for more, the call is written to ``{out}/finetune-{task}.json`` and the head runs
``torchrun --standalone --nproc-per-node DEVICES -m xvlm.pipeline.finetune_launch SPEC``. Every rank then
calls the same function with the same arguments (the model, the data and the selection are the same code
path as in one process): the loop wraps the loss in DDP and each rank reads its shard
(``xvlm.eval.finetune``); rank 0 alone evaluates on validation, writes to MLflow (``tracking.is_writer``) and
the output folder, and prints the function's result, which the head's call returns. The other ranks write into
``{out}/.rank-R`` (removed when they finish), so no two processes write one file; they also compute the test
metrics, in parallel with rank 0, which costs no wall time.

Fine-tunes run on one node (the paper's settings: 8 GPUs); ``devices`` is ``FinetuneOptions.devices`` for
retrieval / grounding and ``TaskConfig.devices`` for VQA, NLVR2 and captioning.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xvlm import fsio
from xvlm.configtree import build
from xvlm.pipeline.config import FinetuneOptions
from xvlm.pipeline.launch import Launch, run_json, torchrun_prefix

FUNCTIONS = {"retrieval": "xvlm.pipeline.retrieval_grounding:finetune_retrieval",
             "grounding": "xvlm.pipeline.retrieval_grounding:finetune_grounding",
             "vqa": "xvlm.pipeline.vl_tasks:finetune_vqa",
             "nlvr2": "xvlm.pipeline.vl_tasks:finetune_nlvr2",
             "caption": "xvlm.pipeline.vl_tasks:finetune_caption"}


def function(task: str) -> Callable[..., dict[str, Any]]:
    module, name = FUNCTIONS[task].split(":")
    return getattr(importlib.import_module(module), name)


def _encode(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if isinstance(out.get("options"), FinetuneOptions):
        out["options"] = out["options"].__dict__ | {"activation_checkpointing": list(out["options"].activation_checkpointing)}
    return out


def _decode(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if isinstance(out.get("options"), dict):
        out["options"] = build(FinetuneOptions, out["options"], "options")
    return out


def relaunch(task: str, kwargs: dict[str, Any], devices: int) -> dict[str, Any] | None:
    """What each task function calls first with its own arguments: on ``devices`` > 1, and unless this
    process already is a rank (``WORLD_SIZE`` > 1), the result of the same call under ``torchrun``
    (module docstring); None means "run here". ``kwargs``: the function's ``locals()`` (only its parameters
are passed on), with ``out``."""
    if devices <= 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    kwargs = {k: v for k, v in kwargs.items() if k in inspect.signature(function(task)).parameters}
    Path(kwargs["out"]).mkdir(parents=True, exist_ok=True)
    spec = fsio.write_text(Path(kwargs["out"]) / f"finetune-{task}.json",
                           json.dumps({"task": task, "kwargs": _encode(kwargs)}))
    return run_json([*torchrun_prefix(Launch(devices=devices)), "-m", "xvlm.pipeline.finetune_launch", str(spec)])


def main(argv: list[str] | None = None) -> int:
    """One rank of a fine-tune under torchrun (``relaunch``)."""
    ap = argparse.ArgumentParser(prog="python -m xvlm.pipeline.finetune_launch", description=__doc__)
    ap.add_argument("spec", help="the JSON written by relaunch")
    spec = json.loads(Path(ap.parse_args(argv).spec).read_text())
    from xvlm.envdefaults import apply_offline_defaults
    from xvlm.train.distributed import cleanup, init_distributed

    apply_offline_defaults()
    kwargs = _decode(spec["kwargs"])
    device = (kwargs.get("options") or FinetuneOptions()).device if spec["task"] in ("retrieval", "grounding") else "auto"
    info = init_distributed(device)  # "auto" / "cuda" resolve to this rank's GPU (finetune.resolve_device)
    if info.device.type == "cuda" and isinstance(kwargs.get("options"), FinetuneOptions):
        kwargs["options"].device = str(info.device)
    scratch = None
    if not info.is_main:
        scratch = Path(kwargs["out"]) / f".rank-{info.rank}"
        kwargs["out"] = str(scratch)
    try:
        result = function(spec["task"])(**kwargs)
    finally:
        cleanup()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if info.is_main:
        print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
