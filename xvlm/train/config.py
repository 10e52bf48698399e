"""``PretrainConfig``: the one typed, JSON-serialisable config of a pre-training run.

Defaults are the reference recipe (METHOD.md §5): AdamW (0.9, 0.98), eps 1e-8, weight decay 0.01 without
decay on biases / norms, lr 1e-4 with 2x for newly initialised parameters, 2,500 warmup steps then linear
decay to 0, clip 1.0, bf16, seed 42. Flows build one, tests shrink it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from xvlm.configtree import build
from xvlm.data.loader import DataConfig


@dataclass
class OptimConfig:
    # Renamed knobs, accepted with a DeprecationWarning until 0.2 (docs/training.md, "Configuration"):
    # one name per knob, ``new_lr_mult`` beside ``vision_lr_mult`` and the fine-tuning TaskConfig's.
    RENAMED: ClassVar[dict[str, str]] = {"lr_mult_new": "new_lr_mult"}

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01
    new_lr_mult: float = 2.0  # newly initialised parameters (cross-attention, projections, heads, temp)
    # Vision tower (``vision_encoder.*``) lr multiplier, for from-scratch towers only: a random Swin trained at
    # the text side's lr collapses to constant features in ~50 steps (docs/training.md, Known gaps). The
    # reference starts from a pre-trained Swin (METHOD.md §2) and keeps 1.0.
    vision_lr_mult: float = 1.0
    warmup_steps: int = 2500
    clip_grad: float = 1.0


@dataclass
class PretrainConfig:
    """A whole pre-training run. ``steps`` counts scheduled steps (image steps in alternating mode)."""

    out_dir: str = "runs/pretrain"
    model: str = "xvlm-debug"  # registered variant name (xvlm.models.config)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # XVLMConfig.replace(**...)
    init_bert: str | None = None  # HF BERT dir to initialise text/cross encoders (None: random init)
    init_swin: str | None = None  # Swin checkpoint to initialise the vision encoder
    # A random start must be asked for: a preset without init_bert / init_swin and without from_scratch
    # fails the start check (xvlm.pipeline.preflight) instead of silently training a random model for days.
    # Recorded as the MLflow run tag ``from_scratch``.
    from_scratch: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 200_000
    grad_accum: int = 1  # micro-batches per optimizer step
    precision: Literal["bf16", "fp32"] = "bf16"  # bf16 autocast for the forward; master weights fp32
    # Towers whose layers recompute their activations in the backward, among ("vision", "text", "cross"):
    # less memory for a second forward of those layers (docs/training.md, "Activation checkpointing").
    activation_checkpointing: tuple[str, ...] = ()
    device: str = "auto"  # auto | cpu | cuda
    parallel: Literal["ddp", "fsdp"] = "ddp"  # when launched by torchrun with WORLD_SIZE > 1
    # Every collective fails after this many seconds instead of hanging on a crashed or stuck rank; must
    # exceed rank 0's longest solo pause (checkpoint write + MLflow copy). docs/training.md, "Multi-process".
    dist_timeout_s: float = 1800.0
    seed: int = 42
    deterministic: bool = False  # torch.use_deterministic_algorithms (tests, bitwise resume)
    ckpt_every: int = 5000
    keep_last: int = 2  # newest checkpoints kept, locally and in MLflow (older ones are deleted from both)
    keep_every: int = 0  # milestones: checkpoints at multiples of this step are kept as well (0: none)
    log_every: int = 1  # steps between metric points (region updates are folded into the next step's)
    resume: bool = True  # continue from out_dir/checkpoints/latest when present
    tags: dict[str, str] = field(default_factory=dict)  # e.g. recipe_hash, manifest_hash (flow-supplied)
    stop_after: int | None = None  # stop (with a checkpoint) after this step, keeping the schedule of `steps`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PretrainConfig:
        """Strict (``xvlm.configtree``): unknown keys raise, so a typo never falls back to a default."""
        return build(cls, d, "pretrain")

    @classmethod
    def from_json(cls, path: str | Path) -> PretrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
