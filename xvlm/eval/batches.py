"""Datasets and collators shared by the downstream fine-tune / evaluation code.

Kept small on purpose: a list of image files (decoded with the evaluation transform, optionally cached in
memory for the small sample splits), texts tokenized in the collator, and per-task training datasets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from xvlm.data.downstream.grounding import GroundingSplit
from xvlm.data.downstream.images import (
    box_preserving_crop,
    eval_transform,
    load_rgb,
    retrieval_train_transform,
)
from xvlm.data.downstream.retrieval import RetrievalSplit
from xvlm.models.config import XVLMConfig

MAX_TOKENS = 40  # the reference pads retrieval texts to 40 tokens


def tokenize(tokenizer: Any, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> tuple[Tensor, Tensor]:
    """Texts -> (ids, attention mask), padded to the longest, [CLS] first, truncated to ``max_tokens``."""
    enc = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_tokens, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class ImageFiles(Dataset):
    """Decoded, transformed images from a list of paths; ``cache`` keeps the tensors after first use."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], Tensor], cache: bool = False) -> None:
        self.paths = list(paths)
        self.transform = transform
        self._cache: dict[int, Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        x = self.transform(load_rgb(self.paths[i]))
        if self._cache is not None:
            self._cache[i] = x
        return x


def image_loader(paths: Sequence[Path], cfg: XVLMConfig, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Evaluation-transform images in file order."""
    ds = ImageFiles(paths, eval_transform(cfg.vision.img_size, cfg.image_mean, cfg.image_std))
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)


# --------------------------------------------------------------------------------------------------------
# Retrieval training: one sample per (image, caption) pair; the image index is the ITC / ITM identity
# --------------------------------------------------------------------------------------------------------


class RetrievalTrainSet(Dataset):
    def __init__(self, split: RetrievalSplit, cfg: XVLMConfig, augment: bool = True, cache: bool = False) -> None:
        res, mean, std = cfg.vision.img_size, cfg.image_mean, cfg.image_std
        tf = retrieval_train_transform(res, mean, std) if augment else eval_transform(res, mean, std)
        self.split = split
        self.images = ImageFiles([split.image_path(i) for i in range(len(split.images))], tf,
                                 cache=cache and not augment)

    def __len__(self) -> int:
        return len(self.split.texts)

    def __getitem__(self, t: int) -> tuple[Tensor, str, int]:
        i = self.split.txt2img[t]
        return self.images[i], self.split.texts[t], i


def retrieval_collate(tokenizer: Any, max_tokens: int = MAX_TOKENS) -> Callable[[list], dict[str, Tensor]]:
    def collate(items: list[tuple[Tensor, str, int]]) -> dict[str, Tensor]:
        ids, atts = tokenize(tokenizer, [t for _, t, _ in items], max_tokens)
        return {"images": torch.stack([x for x, _, _ in items]), "text_ids": ids, "text_atts": atts,
                "image_ids": torch.tensor([i for _, _, i in items], dtype=torch.long)}
    return collate


# --------------------------------------------------------------------------------------------------------
# Grounding training: one sample per expression, box-preserving crop, normalised cxcywh target
# --------------------------------------------------------------------------------------------------------


class GroundingTrainSet(Dataset):
    def __init__(self, split: GroundingSplit, cfg: XVLMConfig, augment: bool = True, seed: int = 0) -> None:
        self.split, self.cfg, self.augment = split, cfg, augment
        self.rng = random.Random(seed)
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, k: int) -> tuple[Tensor, str, Tensor]:
        s = self.split.samples[k]
        img = self._cache.get(s.image)
        if img is None:
            img = load_rgb(self.split.image_path(s))
            self._cache[s.image] = img  # PIL images of the small sample splits; cheap to keep
        if img.size != (s.width, s.height):
            raise ValueError(f"{self.split.image_path(s)}: image is {img.size[0]}x{img.size[1]} but the "
                             f"annotation says {s.width}x{s.height} (ref {s.ref_id})")
        x, target = box_preserving_crop(img, s.box, self.cfg.vision.img_size, self.cfg.image_mean,
                                        self.cfg.image_std, self.rng if self.augment else None)
        return x, s.text, target


def grounding_collate(tokenizer: Any, max_tokens: int = MAX_TOKENS) -> Callable[[list], dict[str, Tensor]]:
    def collate(items: list[tuple[Tensor, str, Tensor]]) -> dict[str, Tensor]:
        ids, atts = tokenize(tokenizer, [t for _, t, _ in items], max_tokens)
        return {"images": torch.stack([x for x, _, _ in items]), "text_ids": ids, "text_atts": atts,
                "bbox_target": torch.stack([b for _, _, b in items])}
    return collate
