"""The pre-training loop: ``train(config, callbacks) -> TrainResult``.

Library code, not a flow: Prefect flows and ``torchrun -m xvlm.train`` both call ``train``. Tracking
(MLflow) is a callback (``xvlm.tracking``), so nothing here imports it.

One *update* = ``grad_accum`` micro-batches -> clip -> AdamW step. One *step* = an update that advances the
LR schedule: every update in "mixed" mode; only image-text updates in "alternating" mode, where region
batches give extra updates without a schedule step (the reference, METHOD.md §3 "Mixing"). The kind of each
update comes from the data seed alone (``xvlm.data.loader.stream.step_kinds``), so under torchrun every rank
takes the same kind of update, ``step`` is the same number everywhere, and the checkpoint / stop decisions
(collective) agree; the losses run the same modules on every rank whatever its batch holds
(``xvlm.models.objective``), so the gradient collectives agree too.

Exact resume: model, optimizer, scheduler, step, loader position (batches consumed) and every rank's RNGs
(dropout included) are in the checkpoint; the loader replays its stream to the saved batch, whatever the
worker count (see ``xvlm.data.loader.stream``), and starting it draws from none of those RNGs, so a resumed
run continues the same loss sequence (bitwise on CPU with ``deterministic=True``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from xvlm import progress
from xvlm.data.collate import normalize_images
from xvlm.data.loader import LoaderBatch, build_loader
from xvlm.errors import BadInput
from xvlm.fsio import write_text
from xvlm.models.config import XVLMConfig, get_config
from xvlm.models.objective import LOSS_KEYS, PretrainBatch, pretrain_losses
from xvlm.models.weights import LoadReport
from xvlm.models.xvlm import XVLM
from xvlm.train import checkpoint as ckpt
from xvlm.train.config import PretrainConfig
from xvlm.train.distributed import (
    DistInfo,
    all_reduce_grads,
    cleanup,
    clip_grad_norm,
    collective_failure,
    init_distributed,
    replicated_params,
    wrap_model,
)
from xvlm.train.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------
# Callback protocol and result
# --------------------------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """What a callback needs at the start: the config, run tags and model facts."""

    config: PretrainConfig
    tags: dict[str, str]
    num_params: int
    world_size: int
    start_step: int  # > 0 when resumed
    out_dir: Path
    load_reports: list[LoadReport] = field(default_factory=list)  # what the model started from


@dataclass
class TrainResult:
    step: int  # scheduled steps done
    updates: int  # optimizer updates done (>= step in alternating mode)
    losses: list[dict[str, Any]]  # per update of *this* process's run: step, kind, each loss, total
    last_checkpoint: Path | None
    wall_s: float
    samples_per_s: float
    out_dir: Path = field(default_factory=Path)


class TrainCallback:
    """Hooks called on rank 0 only. Subclass and override what you need (all no-ops here)."""

    def on_train_start(self, info: RunInfo) -> None: ...

    def on_batch_preview(self, batch: LoaderBatch) -> None: ...

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_train_end(self, result: TrainResult) -> None: ...

    def on_train_error(self, exc: BaseException) -> None:
        """The run stopped with ``exc`` after ``on_train_start`` (an error, KeyboardInterrupt, or SystemExit
        from a SIGTERM handler); ``on_train_end`` is not called. The exception is re-raised afterwards."""


# --------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------


def train_model_config(cfg: PretrainConfig) -> XVLMConfig:
    """The model config a run trains: the registered variant with ``model_overrides`` applied once, checked
    against the data resolution (also what the start check validates, before any stage runs)."""
    mcfg = get_config(cfg.model)
    if cfg.model_overrides:
        mcfg = mcfg.replace(**cfg.model_overrides)
    if mcfg.vision.img_size != cfg.data.image_res:
        raise BadInput(f"data.image_res {cfg.data.image_res} != model {mcfg.name!r} img_size "
                         f"{mcfg.vision.img_size}; set model_overrides={{'vision': {{'img_size': ...}}}}")
    return mcfg


def start_model(cfg: PretrainConfig) -> tuple[XVLM, list[LoadReport]]:
    """The model a run starts from and the ``LoadReport`` of each file it was initialised from (BERT for
    the text / cross encoders, Swin for the vision encoder); a report that is not a clean start (unmapped
    tensors, tied pairs that differ, undocumented new keys) is ``BadInput``."""
    from xvlm.models import weights

    model = XVLM(train_model_config(cfg))
    reports: list[LoadReport] = []
    for key, init, load in (("init_bert", cfg.init_bert, weights.load_bert),
                            ("init_swin", cfg.init_swin, weights.load_swin)):
        if init:
            report = load(model, init)
            log.info(report.summary())
            weights.require_clean_start(report, key)
            reports.append(report)
    return model, reports


def build_train_model(cfg: PretrainConfig) -> XVLM:
    """Model from the registered variant + overrides; optional BERT / Swin initialisation."""
    return start_model(cfg)[0]


def to_device(b: PretrainBatch, device: torch.device, mean: Sequence[float], std: Sequence[float],
              ) -> PretrainBatch:
    """Copy a batch to the device and normalise its uint8 images there."""
    moved = {f.name: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
             for f in dataclasses.fields(b) for v in [getattr(b, f.name)]}
    moved["images"] = normalize_images(moved["images"], mean, std)
    return PretrainBatch(**moved)


def run_tags(cfg: PretrainConfig) -> dict[str, str]:
    """git commit, config hash and the flow-supplied tags (recipe / manifest hashes)."""
    import hashlib
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"git_commit": commit, "config_hash": hashlib.sha256(cfg.to_json().encode()).hexdigest()[:16],
            "from_scratch": str(cfg.from_scratch).lower(), **cfg.tags}


class LossModule(nn.Module):
    """``forward`` = the pre-training losses, so DDP / FSDP see a forward call (their gradient hooks are
    armed in ``forward``; calling the model's feature methods directly would bypass them)."""

    def __init__(self, model: XVLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: PretrainBatch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return pretrain_losses(self.model, batch, generator)


class Trainer:
    """Holds the run's state; ``train()`` below is the public entry point."""

    def __init__(self, cfg: PretrainConfig, callbacks: Sequence[TrainCallback]) -> None:
        if cfg.data.mixing == "alternating" and cfg.grad_accum != 1:
            raise BadInput("alternating region steps need grad_accum == 1")
        self.cfg = cfg
        self.dist: DistInfo = init_distributed(cfg.device, cfg.dist_timeout_s)
        self.callbacks = list(callbacks) if self.dist.is_main else []
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(cfg.seed)  # identical init on every rank
        model, self.load_reports = start_model(cfg)
        model.set_grad_checkpointing(cfg.activation_checkpointing)
        self.model = model.to(self.dist.device)
        # wrap before building the optimizer: FSDP replaces parameters with sharded ones
        self.ddp_model = wrap_model(LossModule(self.model), self.dist, cfg.parallel)
        self.fsdp = cfg.parallel == "fsdp" and self.dist.world_size > 1
        self.replicated = replicated_params(self.model) if self.fsdp else []
        self.opt = build_optimizer(self.model, cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim, cfg.steps)
        ckpt.seed_rank(cfg.seed, self.dist.rank)  # per-rank dropout streams (restored on resume)
        self.itm_gen = torch.Generator(device=self.dist.device).manual_seed(cfg.seed + self.dist.rank)
        self.step = self.updates = self.batches = self.samples = self.tokens = 0
        self.losses: list[dict[str, Any]] = []
        self.last_ckpt: Path | None = None
        self.saved_step = -1  # on every rank (only rank 0 writes, so ``last_ckpt`` is None elsewhere)
        self.start_step = self._maybe_resume()
        self.amp = torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    # -- checkpoints ---------------------------------------------------------------------------------
    def _maybe_resume(self) -> int:
        path = ckpt.latest_checkpoint(self.ckpt_dir) if self.cfg.resume else None
        if path is None:
            return 0
        state = ckpt.load_checkpoint(path)
        dl = state["dataloader"]
        ckpt.check_resume_layout(path, dl, self.cfg.data.num_workers, self.dist.world_size)
        if self.fsdp:
            self._load_fsdp_state(state)
        else:
            self.model.load_state_dict(state["model"])  # DDP: same storage as the wrapped module's
            self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["lr_scheduler"])
        ts = state["train_state"]
        self.step, self.updates = ts["step"], ts["updates"]
        self.samples, self.tokens, self.batches = ts["samples_seen"], ts["tokens_seen"], dl["batches"]
        ckpt.set_rng_state(state["rng"][self.dist.rank], self.itm_gen)
        self.last_ckpt, self.saved_step = path, self.step
        log.info("resumed from %s at step %d", path, self.step)
        return self.step

    def save(self) -> Path | None:
        rng = ckpt.rng_state(self.itm_gen)
        rngs: list[Any] = [rng]
        if self.dist.world_size > 1:
            rngs = [None] * self.dist.world_size
            dist.all_gather_object(rngs, rng)
        model_sd, optim_sd = self._model_state(), self._optim_state()
        self.saved_step = self.step
        if not self.dist.is_main:
            return None
        state = {
            "model": model_sd, "optimizer": optim_sd, "lr_scheduler": self.sched.state_dict(),
            "dataloader": {"batches": self.batches, "num_workers": self.cfg.data.num_workers,
                           "world_size": self.dist.world_size, "seed": self.cfg.data.seed},
            "train_state": {"step": self.step, "updates": self.updates, "samples_seen": self.samples,
                            "tokens_seen": self.tokens},
            "rng": rngs, "config": self.cfg.to_dict(),
            "model_info": ckpt.model_info(self.model.cfg.to_dict(), self.cfg.data.image_res,
                                          [r.to_dict() for r in self.load_reports], self.cfg.from_scratch),
        }
        self.last_ckpt = ckpt.save_checkpoint(self.ckpt_dir, self.step, state, self.cfg.keep_last,
                                                 self.cfg.keep_every)
        for cb in self.callbacks:
            cb.on_checkpoint(self.step, self.last_ckpt)
        return self.last_ckpt

    def _model_state(self) -> dict[str, torch.Tensor]:
        if self.fsdp:  # collective: every rank gathers, rank 0 keeps the full tensors on CPU
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            sd = get_model_state_dict(self.ddp_model, options=StateDictOptions(full_state_dict=True,
                                                                              cpu_offload=True))
            return {k.removeprefix("model."): v for k, v in sd.items()}
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def _optim_state(self) -> dict[str, Any]:
        """Under FSDP the full (unsharded) optimizer state keyed by parameter name, gathered by the
        ``torch.distributed.checkpoint`` state-dict API; otherwise the plain ``Optimizer.state_dict``.
        Either way one self-contained file, so a checkpoint never depends on the sharding layout."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            return get_optimizer_state_dict(self.ddp_model, self.opt, options=StateDictOptions(
                full_state_dict=True, cpu_offload=True))
        return self.opt.state_dict()

    def _load_fsdp_state(self, state: dict[str, Any]) -> None:
        """Re-shard the saved full model and optimizer state onto this rank's FSDP parameters."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.ddp_model, {f"model.{k}": v for k, v in state["model"].items()}, options=opts)
        set_optimizer_state_dict(self.ddp_model, self.opt, state["optimizer"], options=opts)

    # -- steps ---------------------------------------------------------------------------------------
    def forward_backward_step(self, lb: LoaderBatch, scale: float) -> dict[str, torch.Tensor]:
        """Losses of one micro-batch, backward of their sum * ``scale``; returns detached losses."""
        mcfg = self.model.cfg
        batch = to_device(lb.batch, self.dist.device, mcfg.image_mean, mcfg.image_std)
        with self.amp:
            losses = self.ddp_model(batch, self.itm_gen)
        total = sum(losses[k] for k in LOSS_KEYS)
        (total * scale).backward()
        return {k: v.detach() for k, v in losses.items()}

    def train_step(self, batches: Iterator[LoaderBatch]) -> dict[str, float]:
        """One optimizer update over ``grad_accum`` micro-batches; returns the metrics to log."""
        t0 = time.perf_counter()
        n_acc = self.cfg.grad_accum
        sums = {k: torch.zeros((), device=self.dist.device) for k in LOSS_KEYS}
        n_texts = n_tokens = 0
        kind, corrupt = "mixed", 0
        for i in range(n_acc):
            lb = next(batches)
            self.batches += 1
            sync = i == n_acc - 1 or not hasattr(self.ddp_model, "no_sync")
            ctx = self.ddp_model.no_sync() if not sync else torch.enable_grad()  # type: ignore[operator]
            with ctx:
                for k, v in self.forward_backward_step(lb, 1.0 / n_acc).items():
                    sums[k] += v / n_acc
            n_texts += lb.batch.text_ids.shape[0]
            n_tokens += lb.num_tokens
            kind, corrupt = lb.kind, lb.corrupt
        if self.replicated:  # FSDP leaves the unsharded scalars' gradients rank-local
            all_reduce_grads(self.replicated, self.dist.world_size)
        grad_norm = clip_grad_norm(list(self.ddp_model.parameters()), self.cfg.optim.clip_grad)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.updates += 1
        if kind != "region":
            self.sched.step()
            self.step += 1
        losses = torch.stack([sums[k] for k in LOSS_KEYS])
        if self.dist.world_size > 1:  # logged losses are global means; training used local ones
            dist.all_reduce(losses)
            losses /= self.dist.world_size
        vals = dict(zip(LOSS_KEYS, losses.tolist(), strict=True))
        self.samples += n_texts * self.dist.world_size
        self.tokens += n_tokens * self.dist.world_size
        dt = time.perf_counter() - t0
        return {**{f"loss_{k}": v for k, v in vals.items()}, "loss": sum(vals.values()),
                "lr": self.opt.param_groups[0]["lr"] / self.opt.param_groups[0]["lr_mult"],
                "grad_norm": float(grad_norm), "samples_per_s": n_texts * self.dist.world_size / dt,
                "tokens_per_s": n_tokens * self.dist.world_size / dt, "corrupt_samples": float(corrupt),
                "region_update": float(kind == "region"), "update": float(self.updates)}

    # -- run -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        loss_log = self.out / "losses.jsonl"
        if self.dist.is_main:
            _truncate_log(loss_log, self.updates)
        info = RunInfo(cfg, run_tags(cfg), sum(p.numel() for p in self.model.parameters()),
                       self.dist.world_size, self.start_step, self.out, self.load_reports)
        for cb in self.callbacks:
            cb.on_train_start(info)
        try:
            return self._run()
        except BaseException as exc:  # also KeyboardInterrupt / SystemExit: a killed run must end as such
            for cb in self.callbacks:
                try:
                    cb.on_train_error(exc)
                except Exception:  # noqa: BLE001 - a failing callback must not hide the run's own error
                    log.exception("%s.on_train_error failed", type(cb).__name__)
            raise

    def _run(self) -> TrainResult:
        cfg = self.cfg
        loss_log = self.out / "losses.jsonl"
        loader = build_loader(cfg.data, self.dist.rank, self.dist.world_size, start_batch=self.batches,
                              pin_memory=self.dist.device.type == "cuda")
        batches = iter(loader)
        if self.callbacks and self.start_step == 0:
            first = next(iter(build_loader(dataclasses.replace(cfg.data, num_workers=0),
                                           self.dist.rank, self.dist.world_size)))
            for cb in self.callbacks:
                cb.on_batch_preview(first)
        end = min(cfg.steps, cfg.stop_after) if cfg.stop_after is not None else cfg.steps
        t0, s0 = time.perf_counter(), self.samples
        self.model.train()
        region: list[dict[str, float]] = []  # region updates since the last reported step
        while self.step < end:
            metrics = self.train_step(batches)
            record = {"step": self.step, "update": self.updates,
                      **{k: metrics[f"loss_{k}"] for k in LOSS_KEYS}, "loss": metrics["loss"]}
            self.losses.append(record)
            if self.dist.is_main:
                with open(loss_log, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if metrics["region_update"] == 1.0:
                region.append(metrics)
                continue
            if self.dist.is_main and self.step % cfg.log_every == 0:
                point = step_point(metrics, region if cfg.data.mixing == "alternating" else None)
                region = []
                for cb in self.callbacks:
                    cb.on_step_end(self.step, point)
            if self.step % cfg.ckpt_every == 0:
                self.save()
        if self.saved_step != self.step:  # the same decision on every rank: save() is collective
            self.save()
        wall = time.perf_counter() - t0
        result = TrainResult(self.step, self.updates, self.losses, self.last_ckpt, wall,
                             (self.samples - s0) / max(wall, 1e-9), self.out)
        for cb in self.callbacks:
            cb.on_train_end(result)
        return result


def step_point(metrics: dict[str, float], region: Sequence[dict[str, float]] | None) -> dict[str, float]:
    """One metric point per step: the image-text update's metrics and, in alternating mode (``region`` not
    None), the mean of the region updates since the last reported step under ``region/`` and their count
    as ``region_updates``.

    In alternating mode region updates do not advance ``step`` (module docstring); logged as points of their
    own they would repeat the step number of the update before them, and MLflow would show two values
    of ``loss_bbox`` at one step.
    """
    point = {k: v for k, v in metrics.items() if k != "region_update"}
    if region is None:
        return point
    point["region_updates"] = float(len(region))
    for key in region[0] if region else ():
        if key not in ("region_update", "update"):
            point[f"region/{key}"] = sum(m[key] for m in region) / len(region)
    return point


def _truncate_log(path: Path, updates: int) -> None:
    """Drop records past the resumed update (they were written after the checkpoint and will be redone)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["update"] <= updates]
    write_text(path, "".join(ln + "\n" for ln in keep))


class ProgressCallback(TrainCallback):
    """Training steps on the current :mod:`xvlm.progress` reporter, with loss and samples/s.

    Updated every ``log_every`` steps (when the metrics are reported), so it costs nothing extra per step.
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._bar: progress.TaskHandle | None = None
        self._step = 0

    def on_train_start(self, info: RunInfo) -> None:
        cfg = info.config
        end = min(cfg.steps, cfg.stop_after) if cfg.stop_after is not None else cfg.steps
        self._step = info.start_step
        self._bar = self._stack.enter_context(progress.task("train", total=end, unit="step",
                                                            completed=info.start_step))

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.advance(step - self._step, loss=metrics["loss"], samples_s=metrics["samples_per_s"])
            self._step = step

    def on_train_end(self, result: TrainResult) -> None:
        if self._bar is not None and result.step > self._step:
            self._bar.advance(result.step - self._step)
            self._step = result.step
        self.close()

    def close(self) -> None:
        """End the progress step (also after a failed run, so a live display is stopped)."""
        self._stack.close()
        self._bar = None


def train(config: PretrainConfig, callbacks: Sequence[TrainCallback] = ()) -> TrainResult:
    """Pre-train (or resume) as ``config`` says; callbacks (e.g. ``xvlm.tracking.MLflowCallback``) run on
    rank 0. Under ``torchrun`` every rank calls this; the process group is torn down on exit.

    A :class:`ProgressCallback` is added only when an :mod:`xvlm.progress` reporter is active: any callback
    makes the trainer build a preview batch, which a plain run should not pay for."""
    bar = None if isinstance(progress.current(), progress.NullReporter) else ProgressCallback()
    trainer: Trainer | None = None
    try:
        trainer = Trainer(config, [*callbacks, bar] if bar else callbacks)
        return trainer.run()
    except Exception as exc:
        _reraise_distributed(exc, trainer, config.dist_timeout_s)
        raise
    finally:
        if bar:
            bar.close()
        cleanup()


def _reraise_distributed(exc: Exception, trainer: Trainer | None, timeout_s: float) -> None:
    """Under torchrun: log which rank failed where (the first such line is the cause), and turn a failed or
    timed-out collective (another rank's failure seen from here) into a one-line ``DistributedFailure``."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return
    where = f"update {trainer.updates + 1} (step {trainer.step})" if trainer is not None else "start-up"
    failure = collective_failure(exc, rank, world, where, timeout_s)
    if failure is not None:
        log.error("%s", failure)
        raise failure from exc
    log.error("rank %d/%d failed at %s: %s: %s", rank, world, where, type(exc).__name__, exc)
