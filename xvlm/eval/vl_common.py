"""Pieces shared by the VQA / NLVR2 / captioning fine-tunes: image cache, tokenisation, task config.

Training and evaluation both use the reference's test transform (square bicubic resize, no flip / crop /
RandAugment): NLVR2 sentences and captions say "left" / "right", and the sample-set runs are short. The
decoded tensors of the small sample splits are cached in memory (``ImageCache``); real-size runs should
use a DataLoader with workers instead (TODO when these tasks run on the real datasets).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xvlm import progress
from xvlm.data.downstream.images import eval_transform, load_rgb
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.finetune import FinetuneConfig, world
from xvlm.models.config import XVLMConfig


@dataclass
class TaskConfig:
    """Fine-tune + inference settings of one downstream task (defaults: the reference recipe, §5.3)."""

    epochs: int = 10
    max_steps: int | None = None  # cap for debug runs / tests
    batch_size: int = 24
    eval_batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    new_lr_mult: float = 2.0
    # Vision tower's lr multiplier. 1.0 from a pre-trained tower (the reference); ~0.1 when the Swin starts from
    # random weights (debug runs): NLVR2 at lr 1e-3 drove the random debug Swin to one image feature (pairwise
    # cosine 0.9997) within 60 steps, as retrieval does under ITC (docs/evaluation.md).
    vision_lr_mult: float = 1.0
    seed: int = 0
    precision: str = "fp32"  # "bf16" on GPUs: autocast forward, fp32 weights (``FinetuneConfig.precision``)
    activation_checkpointing: tuple[str, ...] = ()  # towers among ("vision", "text", "cross")
    devices: int = 1  # processes (GPUs); > 1: DDP under torchrun (xvlm.pipeline.finetune_launch)
    max_words: int = 30  # question / sentence / caption words kept (reference max_ques_words 30)
    max_tokens: int = 40
    # VQA
    k_test: int = 128  # answers re-ranked by full likelihood after the first-token stage
    # NLVR2
    nlvr_design: str = "interleaved"
    # captioning
    prompt: str = "a picture of "
    label_smoothing: float = 0.1
    beam_size: int = 3
    min_length: int = 5
    max_length: int = 20

    def to_params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def finetune_config(self, select: str | None) -> FinetuneConfig:
        """The loop's settings of this task (``xvlm.eval.finetune``)."""
        return FinetuneConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                              warmup_frac=self.warmup_frac, max_steps=self.max_steps, seed=self.seed, select=select,
                              precision=self.precision,  # type: ignore[arg-type]
                              activation_checkpointing=tuple(self.activation_checkpointing))


def lr_mults(cfg: TaskConfig, new_params: Sequence[str]) -> dict[str, float]:
    """``finetune``'s name-prefix -> lr multiplier map: task-new parameters x ``new_lr_mult`` (the reference's
    x2), the vision tower x ``vision_lr_mult``; the task models name their towers ``vision_encoder.*``."""
    return {**{pre: cfg.new_lr_mult for pre in new_params}, "vision_encoder.": cfg.vision_lr_mult}


class ImageCache:
    """Path -> normalised (3, R, R) tensor with the evaluation transform, decoded once."""

    def __init__(self, cfg: XVLMConfig) -> None:
        self.transform = eval_transform(cfg.vision.img_size, cfg.image_mean, cfg.image_std)
        self._cache: dict[Path, Tensor] = {}

    def __call__(self, path: Path) -> Tensor:
        if path not in self._cache:
            if not Path(path).is_file():
                raise MissingInput(f"image {path} missing")
            self._cache[path] = self.transform(load_rgb(path))
        return self._cache[path]

    def batch(self, paths: Sequence[Path]) -> tuple[Tensor, Tensor]:
        """Distinct images of a batch (Swin runs once per image) and each sample's row among them."""
        order: dict[Path, int] = {}
        index = [order.setdefault(p, len(order)) for p in paths]
        return torch.stack([self(p) for p in order]), torch.tensor(index)


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> tuple[Tensor, Tensor]:
    """[CLS] text [SEP], padded to the longest in the batch, truncated to ``max_tokens``."""
    enc = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_tokens, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class Batches:
    """A sized, reshuffled-every-epoch iterable of collated batches (what ``finetune`` expects).

    Under torchrun every rank shuffles the whole list with the same seed and takes every ``world_size``-th
    item from its rank on (the tail that does not divide is left out), so the ranks see disjoint shards of
    equal size, a new split every epoch (``DistributedSampler``'s rule)."""

    def __init__(self, items: Sequence[Any], batch_size: int, collate: Any, seed: int = 0) -> None:
        if not items:
            raise BadInput("no training items")
        self.items, self.batch_size, self.collate = list(items), batch_size, collate
        self.rng = random.Random(seed)
        self.rank, self.world_size = world()

    def __len__(self) -> int:
        return -(-(len(self.items) // self.world_size) // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = list(range(len(self.items)))
        self.rng.shuffle(order)
        order = order[self.rank : len(order) // self.world_size * self.world_size : self.world_size]
        for i in range(0, len(order), self.batch_size):
            yield self.collate([self.items[j] for j in order[i : i + self.batch_size]])


def chunks(items: Sequence[Any], size: int, description: str = "predict") -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size`` (the evaluation batches), shown as a step of the progress reporter."""
    for i in progress.track(range(0, len(items), size), description, unit="batch"):
        yield items[i : i + size]
