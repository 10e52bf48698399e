"""Resumable checkpoints: a dict of stateful parts with pinned key names, written atomically.

Layout: ``{out_dir}/checkpoints/step-{step:08d}.pt`` plus ``latest`` (a text file naming the newest);
pruning keeps the newest ``keep_last`` plus the milestones (every ``keep_every``-th step), by ``to_prune``,
the one rule for the local folder and for the copies in MLflow (``xvlm.tracking.MLflowCallback``). Keys (pinned by ``tests/train/test_train.py``):

- ``model``: state dict (unwrapped from DDP / FSDP full state dict)
- ``optimizer``, ``lr_scheduler``: their state dicts
- ``dataloader``: ``{"batches": per-rank batches consumed, "num_workers", "world_size", "seed"}``
- ``train_state``: ``{"step", "updates", "samples_seen", "tokens_seen"}``
- ``rng``: one entry per rank (gathered on save, each rank restores its own): torch CPU (dropout, drop
  path) / CUDA, Python ``random``, NumPy states and the ITM negative-sampling generator. The loader's
  streams need no state: each (rank, worker) reader draws from seeds of (seed, rank, worker, epoch,
  sample) and resumes by position (``dataloader.batches``, ``xvlm.data.loader.stream``)
- ``config``: the ``PretrainConfig`` as a dict (for humans and tools; resume uses the live config)
- ``model_info`` (added in 0.2; ``model_info``): what the checkpoint needs to be used on its own: the full
  model config dict, the image resolution, the tokenizer vocabulary's sha256, the ``LoadReport`` of each
  file the run started from and ``from_scratch``. Older checkpoints lack it and still load (``REQUIRED_KEYS``).

Written with ``torch.save`` to a temp file, fsync'd and renamed, so a kill mid-write never leaves a torn
``step-*.pt`` or ``latest``; loaded with ``weights_only=True`` (every part is tensors / plain containers).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xvlm.errors import BadInput, MissingInput
from xvlm.fsio import atomic_path, load_tensors, write_text

REQUIRED_KEYS = ("model", "optimizer", "lr_scheduler", "dataloader", "train_state", "rng", "config")
CHECKPOINT_KEYS = (*REQUIRED_KEYS, "model_info")  # what save_checkpoint writes, in this order


def model_info(model_config: dict[str, Any], image_res: int, init: list[dict[str, Any]],
               from_scratch: bool | None) -> dict[str, Any]:
    """The self-description every checkpoint carries (pre-training and fine-tuned alike): enough to
    rebuild the model, feed it and say where its weights started, with no other file at hand."""
    from xvlm.tokenizer import vocab_sha256

    return {"model_config": model_config, "image_res": int(image_res), "vocab_sha256": vocab_sha256(),
            "init": list(init), "from_scratch": from_scratch}


def seed_rank(seed: int, rank: int) -> None:
    """Seed every global RNG of this rank (torch CPU and CUDA, Python, NumPy) from (seed, rank): dropout
    masks differ across ranks, a run is repeatable, and ``rng_state`` / ``set_rng_state`` carry the streams
    across a resume."""
    s = seed + 1000 * rank
    torch.manual_seed(s)  # also every CUDA device
    random.seed(s)
    np.random.seed(s & 0xFFFFFFFF)


def check_resume_layout(path: str | Path, saved: dict[str, Any], num_workers: int, world_size: int) -> None:
    """Refuse a resume whose reader layout differs from the checkpoint's (``BadInput``, one line).

    The sample stream is split over world_size x num_workers readers, each with its own shards, shuffle
    buffer and batch boundaries; the checkpoint records how many batches each rank consumed of *that*
    split. Another split has no position that continues it: the samples already seen are not a prefix of
    the new stream, so resuming would repeat some and skip others. docs/training.md, "What resume
    guarantees across world sizes"."""
    was, now = (saved["world_size"], saved["num_workers"]), (world_size, num_workers)
    if was != now:
        raise BadInput(
            f"{path}: saved with world_size={was[0]} x num_workers={was[1]}, resuming with world_size="
            f"{now[0]} x num_workers={now[1]}: the data stream is split over world_size x num_workers "
            "readers, so another split would repeat and skip samples; resume with the saved ones")


def rng_state(itm_generator: torch.Generator | None) -> dict[str, Any]:
    """This rank's RNG states, as tensors and plain containers (``weights_only`` loading)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "itm": itm_generator.get_state() if itm_generator is not None else torch.empty(0, dtype=torch.uint8),
    }


def set_rng_state(state: dict[str, Any], itm_generator: torch.Generator | None) -> None:
    """Restore what ``rng_state`` saved (a checkpoint without CUDA states leaves CUDA's as seeded)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    if itm_generator is not None and state["itm"].numel():
        itm_generator.set_state(state["itm"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, list | tuple) else x


def to_prune(steps: list[int], keep_last: int, keep_every: int = 0) -> list[int]:
    """The checkpoint steps to delete: all but the newest ``keep_last`` (0 or less: keep all) and the
    milestones, steps that are multiples of ``keep_every`` (0: none), kept for good (a 16M run's disk budget:
    docs/training.md, "Checkpoint disk budget")."""
    if keep_last <= 0:
        return []
    newest = set(sorted(steps)[-keep_last:])
    return sorted(s for s in steps if s not in newest and not (keep_every > 0 and s % keep_every == 0))


def save_checkpoint(ckpt_dir: str | Path, step: int, state: dict[str, Any], keep_last: int = 2,
                    keep_every: int = 0) -> Path:
    """Write ``step-{step:08d}.pt`` atomically, then point ``latest`` at it, then prune (``to_prune``)."""
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    state = {k: state[k] for k in CHECKPOINT_KEYS}  # the pinned order
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:  # fsync'ed before the rename (xvlm.fsio)
        torch.save(state, tmp)
    write_text(ckpt_dir / "latest", path.name)
    saved = {int(f.stem.removeprefix("step-")): f for f in ckpt_dir.glob("step-*.pt")}
    for old in to_prune(list(saved), keep_last, keep_every):
        saved[old].unlink()
    return path


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names, or None when there is none yet."""
    pointer = Path(ckpt_dir) / "latest"
    if not pointer.is_file():
        return None
    path = Path(ckpt_dir) / pointer.read_text().strip()
    if not path.is_file():
        raise MissingInput(f"{pointer} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole training state, to resume (models for evaluation / inference: ``xvlm.eval.checkpoint``).

    Read by ``fsio.load_tensors`` (``weights_only=True``): a text file, a corrupt or truncated checkpoint
    is one line naming the file. Checkpoints from before ``model_info`` load (only ``REQUIRED_KEYS``)."""
    state = load_tensors(path, "checkpoint")
    if not isinstance(state, dict):
        raise BadInput(f"{path}: not a pre-training checkpoint (a {type(state).__name__}, not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise BadInput(f"{path}: not a pre-training checkpoint, missing {missing}")
    return state
