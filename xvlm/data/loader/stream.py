"""The pre-training stream over webdataset shards: split, shuffle, plan, batch, execute, resume.

Pipeline inside each reader (one reader = one DataLoader worker of one rank):

    shards (shuffled per epoch, split by rank and worker) -> webdataset tar samples -> ``parse_sample``
    -> shuffle buffer -> plan (metadata only) -> batcher (fixed number of texts) -> decode+augment -> collate

Why it is built like this:
- **Fixed texts per batch, no duplicates** (METHOD.md §4): the batcher adds images until ``batch_texts``
  texts are reached; the last image contributes only the texts that fit (its others are dropped). Every
  rank therefore has the same B, which the all-gathered ITC needs, without the reference's duplicated
  padding samples (false negatives).
- **The same step kind on every rank** (``mixing="alternating"``): whether global batch k is a region or an
  image-text batch is drawn from ``step_kinds(seed, region_steps)``, which every rank and worker computes
  alike, never from the rank's own data, so every rank takes the same kind of step and ``step`` (image-text
  steps) means the same everywhere. A rank whose shards cannot fill the wanted kind (box-free web captions
  asked for a region batch, caption-less region records for an image-text one) hands over its oldest
  waiting batch of the other kind once ``LOOKAHEAD`` of them wait: nothing is dropped, no rank blocks.
- **Infinite, deterministic per-reader streams**: each reader loops over epochs of its own shards and
  every random draw is seeded from (seed, rank, worker, epoch, sample index), never from a global RNG.
  DataLoader hands out batches round-robin over workers starting at worker 0, so global batch k of a rank
  comes from *logical* worker k % W. Resuming at batch k therefore means: DataLoader worker i plays
  logical worker (i + k) % W (so the first batch handed out is k's, from the worker that owns it; without
  this rotation a k that is not a multiple of W came back with neighbouring batches swapped), and logical
  worker w fast-forwards over its first |{j < k : j % W = w}| batches, *planning but not decoding* them
  (cheap): the stream continues exactly as if never interrupted. The DataLoader has its own generator, so
  starting it never draws from the trainer's global torch RNG (that draw shifted every dropout mask of a
  resumed run); each worker's own global RNGs are seeded from (seed, rank, worker) alone.
- **Fixed reader layout**: readers are (rank, worker) pairs, each with its own shards, shuffle buffer and
  batch boundaries, so the stream depends on world_size x num_workers; a resume with another layout is
  refused by the trainer (``xvlm.train.checkpoint.check_resume_layout``).
- **Never silent**: corrupt samples (``CorruptSample``, tar errors) go through ``handler``, which counts
  and logs them; the counts travel with every batch (``LoaderBatch.corrupt``).
"""

from __future__ import annotations

import glob
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from xvlm.data.augment import AugmentConfig, Augmenter, SamplePlan, plan_image_text, plan_region
from xvlm.data.collate import Collator, MaskingConfig
from xvlm.data.loader.records import CorruptSample, parse_sample
from xvlm.errors import BadInput, MissingInput
from xvlm.models.objective import PretrainBatch

log = logging.getLogger(__name__)

Mixing = Literal["mixed", "alternating"]

# Alternating mode: complete batches of the other kind that may wait for the wanted kind before the oldest
# of them is handed over instead (bounds memory and lookahead on a rank whose data lacks one kind).
LOOKAHEAD = 2


def step_kinds(seed: int, region_steps: float) -> Iterator[str]:
    """The global sequence of batch kinds in alternating mode, identical on every rank and worker.

    Before each image-text batch come floor(r) region batches plus one more with probability r - floor(r),
    r = ``region_steps``: r = 0.5 is the reference's "a region step with probability 0.5 before each
    image-text step" (METHOD.md §3, "Mixing"); r = 0 never takes a region step.
    """
    if not region_steps >= 0:
        raise BadInput(f"data.region_steps must be >= 0, got {region_steps}")
    rng = random.Random(_seed(seed, 13))
    whole, frac = math.floor(region_steps), region_steps - math.floor(region_steps)
    while True:
        yield from ["region"] * (whole + (rng.random() < frac))
        yield "image"


@dataclass
class DataConfig:
    """Everything the loader needs; JSON-serialisable (part of ``PretrainConfig``)."""

    shards: list[str] = field(default_factory=list)  # tar paths or glob patterns
    image_res: int = 224
    batch_texts: int = 128  # texts per batch per rank (B)
    max_texts_per_image: int = 5
    region_prob: float = 0.5  # a record with boxes (and captions) becomes a region sample with this prob.
    mixing: Mixing = "mixed"  # "alternating": separate image-text and region batches (reference)
    region_steps: float = 0.5  # alternating: mean region batches before each image-text one (step_kinds)
    shuffle_buffer: int = 1000
    num_workers: int = 4
    seed: int = 42
    max_words: int = 40
    max_tokens: int = 40
    mask_prob: float = 0.25
    max_masks: int = 8
    skipgram_prb: float = 0.2
    skipgram_size: int = 3
    vocab_path: str | None = None  # None: the default bert-base-uncased vocab (xvlm.tokenizer)
    scale_min: float = 0.2
    randaug_n: int = 2
    randaug_m: int = 7
    randaugment: bool = True
    draft: bool = True

    def resolve_shards(self) -> list[str]:
        """Expand globs; sorted so every rank sees the same list. Empty -> error naming the patterns."""
        out: list[str] = []
        for s in self.shards:
            out.extend(sorted(glob.glob(s)) if any(c in s for c in "*?[") else [s])
        if not out:
            raise MissingInput(f"no shards match {self.shards}")
        return out

    def augment(self) -> AugmentConfig:
        return AugmentConfig(res=self.image_res, scale=(self.scale_min, 1.0), randaug_n=self.randaug_n,
                             randaug_m=self.randaug_m, max_texts=self.max_texts_per_image,
                             max_words=self.max_words, draft=self.draft, randaugment=self.randaugment)

    def masking(self) -> MaskingConfig:
        return MaskingConfig(self.mask_prob, self.max_masks, self.skipgram_prb, self.skipgram_size)


@dataclass
class LoaderBatch:
    """One training batch and what the loop logs about it."""

    # The step's kind, the same on every rank. Alternating mode: "region" / "image" as ``step_kinds`` says;
    # the texts are of that kind unless ``stand_in`` (this rank had none; see the module docstring).
    kind: Literal["mixed", "image", "region"]
    batch: PretrainBatch  # images uint8; normalise on the device (collate.normalize_images)
    texts: list[str]
    keys: list[str]  # image keys, row order of batch.images
    num_tokens: int  # non-padding tokens
    corrupt: int  # corrupt samples this reader has skipped so far (cumulative)
    epoch: int
    stand_in: bool = False  # alternating: this rank had no batch of ``kind``; the texts are of the other kind


class CorruptCounter:
    """webdataset-style handler: count, log and continue (a corrupt sample is never silent)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: Exception) -> bool:
        self.count += 1
        log.warning("skipping corrupt sample #%d: %s", self.count, exn)
        return True


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class PretrainStream(IterableDataset):
    """Infinite stream of ``LoaderBatch`` for one rank; ``start_batch`` resumes at that batch."""

    def __init__(self, cfg: DataConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0) -> None:
        super().__init__()
        self.cfg, self.rank, self.world, self.start_batch = cfg, rank, world_size, start_batch
        self.shards = cfg.resolve_shards()
        self.aug_cfg = cfg.augment()
        self.collate = Collator(cfg.image_res, cfg.max_tokens, cfg.masking(), cfg.vocab_path)

    # -- reading ---------------------------------------------------------------------------------------
    def _records(self, reader: int, n_readers: int, epoch: int, handler: CorruptCounter) -> Iterator[Any]:
        """This reader's records of one epoch, shuffled. With fewer shards than readers every reader reads
        all shards and keeps every n-th sample (correct, only slower; produce more shards)."""
        order = self.shards[:]
        random.Random(_seed(self.cfg.seed, epoch, 7)).shuffle(order)
        by_shard = len(order) >= n_readers
        mine = order[reader::n_readers] if by_shard else order
        samples = wds.DataPipeline(wds.SimpleShardList(mine), wds.tarfile_to_samples(handler=handler))
        rng = random.Random(_seed(self.cfg.seed, epoch, reader, 11))

        def parsed() -> Iterator[Any]:
            for i, s in enumerate(samples):
                if not by_shard and i % n_readers != reader:
                    continue
                try:
                    yield parse_sample(s)
                except CorruptSample as e:
                    handler(e)

        buf = max(1, self.cfg.shuffle_buffer)
        yield from wds.filters._shuffle(parsed(), bufsize=buf, initial=buf, rng=rng)

    def _plan(self, rec: Any, seed: int) -> SamplePlan | None:
        rng = random.Random(seed)
        want_region = bool(rec.concepts) and (not rec.captions or rng.random() < self.cfg.region_prob)
        if want_region:
            return plan_region(rec, self.aug_cfg, rng, seed) or plan_image_text(rec, self.aug_cfg, rng, seed)
        return plan_image_text(rec, self.aug_cfg, rng, seed) or plan_region(rec, self.aug_cfg, rng, seed)

    def plans(self, reader: int, n_readers: int, handler: CorruptCounter) -> Iterator[tuple[int, SamplePlan]]:
        """(epoch, plan) forever; a record with no usable text is counted as corrupt."""
        epoch = 0
        while True:
            n = 0
            for i, rec in enumerate(self._records(reader, n_readers, epoch, handler)):
                plan = self._plan(rec, _seed(self.cfg.seed, self.rank, reader, epoch, i))
                if plan is None:
                    handler(CorruptSample(rec.shard, rec.key, "captions/concepts", "no usable text"))
                    continue
                n += 1
                yield epoch, plan
            if n == 0:
                raise RuntimeError(f"reader {reader}/{n_readers} got no usable samples from {self.shards}")
            epoch += 1

    # -- batching ----------------------------------------------------------------------------------------
    def batch_plans(self, reader: int, n_readers: int, handler: CorruptCounter,
                    ) -> Iterator[tuple[str, int, list[SamplePlan]]]:
        """Group plans into batches of exactly ``batch_texts`` texts (one pool per kind if alternating), in
        the order the data fills them; ``__iter__`` reorders alternating ones by ``step_kinds``."""
        target = self.cfg.batch_texts
        pools: dict[str, list[SamplePlan]] = {}
        counts: dict[str, int] = {}
        # An image already in the pool (a pool can straddle an epoch boundary) waits for the next batch:
        # the same image twice in a batch would make same-image pairs look like ITC/ITM negatives.
        deferred: dict[str, list[SamplePlan]] = {}
        for epoch, plan in self.plans(reader, n_readers, handler):
            kind = plan.kind if self.cfg.mixing == "alternating" else "mixed"
            queue = [plan]
            while queue:
                p = queue.pop(0)
                if any(q.record.key == p.record.key for q in pools.get(kind, [])):
                    deferred.setdefault(kind, []).append(p)
                    continue
                take = p.texts[: target - counts.get(kind, 0)]
                pools.setdefault(kind, []).append(SamplePlan(p.record, p.kind, p.crop, p.flip, take, p.seed))
                counts[kind] = counts.get(kind, 0) + len(take)
                if counts[kind] == target:
                    yield kind, epoch, pools.pop(kind)
                    counts[kind] = 0
                    queue = deferred.pop(kind, []) + queue

    def by_kind(self, batches: Iterator[tuple[str, int, list[SamplePlan]]], wanted: Iterator[str],
                ) -> Iterator[tuple[str, int, list[SamplePlan], bool]]:
        """Alternating mode: hand out the ``wanted`` kinds in order, taking each from ``batches`` (in data
        order); a kind this reader lacks is replaced by the oldest batch of the other kind once ``LOOKAHEAD``
        of those wait (the last item, ``stand_in``, says so). The yielded kind is always the wanted one: it is
        the step's kind on every rank."""
        waiting: dict[str, deque[tuple[int, list[SamplePlan]]]] = {"image": deque(), "region": deque()}
        for want in wanted:
            other = "image" if want == "region" else "region"
            while not waiting[want] and len(waiting[other]) < LOOKAHEAD:
                kind, epoch, plans = next(batches)
                waiting[kind].append((epoch, plans))
            stand_in = not waiting[want]
            epoch, plans = waiting[other if stand_in else want].popleft()
            yield want, epoch, plans, stand_in

    def __iter__(self) -> Iterator[LoaderBatch]:
        info = get_worker_info()
        nw = info.num_workers if info is not None else 1
        wid = ((info.id if info is not None else 0) + self.start_batch) % nw  # logical worker (docstring)
        reader, n_readers = self.rank * nw + wid, self.world * nw
        skip = len(range(wid, self.start_batch, nw))  # this worker's share of the consumed batches
        handler = CorruptCounter()
        augment = Augmenter(self.aug_cfg)
        filled = self.batch_plans(reader, n_readers, handler)
        if self.cfg.mixing == "alternating":  # this worker serves global batches wid, wid + nw, ...
            wanted = itertools.islice(step_kinds(self.cfg.seed, self.cfg.region_steps), wid, None, nw)
            batches = self.by_kind(filled, wanted)
        else:
            batches = ((kind, epoch, plans, False) for kind, epoch, plans in filled)
        for kind, epoch, plans, stand_in in batches:
            if skip > 0:
                skip -= 1
                continue
            samples = [augment(p) for p in plans]
            batch = self.collate(samples)
            yield LoaderBatch(kind=kind, batch=batch, texts=[t.text for p in plans for t in p.texts],  # type: ignore[arg-type]
                              keys=[p.record.key for p in plans], num_tokens=int(batch.text_atts.sum()),
                              corrupt=handler.count, epoch=epoch, stand_in=stand_in)


def build_loader(cfg: DataConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """DataLoader over ``PretrainStream`` (batching happens in the workers: ``batch_size=None``)."""
    ds = PretrainStream(cfg, rank, world_size, start_batch)
    kw: dict[str, Any] = {}
    if cfg.num_workers > 0:
        kw = {"persistent_workers": False, "prefetch_factor": 2}
    # Its own generator: ``iter(loader)`` draws the workers' base seed from it, not from the global torch RNG
    # (dropout's stream), which a resumed run restores *before* the loader starts.
    gen = torch.Generator().manual_seed(_seed(cfg.seed, rank, 17))
    return DataLoader(ds, batch_size=None, num_workers=cfg.num_workers, pin_memory=pin_memory,
                      worker_init_fn=_worker_init, generator=gen, **kw)


def _worker_init(worker_id: int) -> None:
    """One decode thread per worker (the workers are the parallelism), and the worker's Python / NumPy RNGs
    seeded from its torch seed (the loader generator's base seed + the worker id, so fixed by (seed, rank,
    worker)): the stream itself never reads them, but a third-party transform that did would still replay."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() & 0xFFFFFFFF
    random.seed(seed)
    np.random.seed(seed)
