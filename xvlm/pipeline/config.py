"""``RunConfig``: the one configuration tree of a pre-training run, and the presets that map onto it.

A preset (``configs/pretrain/{demo,4m,16m}.json``) is a ``RunConfig`` written as JSON, key for key:

    RunConfig                      the training run: every ``PretrainConfig`` field (model, init_bert,
    |                              init_swin, steps, precision, ...), plus
    |- recipe                      which corpus: ``recipes/<recipe>.json`` (lake sources, leak splits, ...)
    |- data: DataConfig            the loader (xvlm.data.loader)
    |- optim: OptimConfig          AdamW, schedule, lr multipliers
    `- downstream: DownstreamConfig  the evaluation stage (METHOD.md §7)
       |- finetune: FinetuneOptions  retrieval / grounding fine-tuning
       `- tasks: {vqa|nlvr2|caption: TaskConfig overrides}

Loaded by ``xvlm.configtree.build`` (strict: an unknown key anywhere fails before anything runs, with its
path). ``xvlm pretrain --preset P --print-config`` prints the resolved tree. The training process gets
``RunConfig.train_config()`` (a ``PretrainConfig``: what checkpoints and MLflow params record).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xvlm.configtree import build, check_keys
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.vl_common import TaskConfig
from xvlm.train.config import PretrainConfig

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "configs" / "pretrain"
RG_TASKS = ("retrieval", "grounding")  # zero-shot + fine-tuned (xvlm.pipeline.retrieval_grounding)
VL_TASKS = ("vqa", "nlvr2", "caption")  # fine-tuned (xvlm.pipeline.vl_tasks)
EVALUATIONS = RG_TASKS + VL_TASKS
# Per-task defaults on top of TaskConfig's (the reference's fine-tuning recipes, METHOD.md §7).
VL_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "vqa": {"lr": 5e-5},
    "nlvr2": {"lr": 3e-5, "batch_size": 10},
    "caption": {"lr": 1e-5, "epochs": 5, "batch_size": 32},
}
DEFAULT_K = 128  # retrieval: ITC candidates re-ranked by ITM (the reference's k_test; its COCO configs use 256)


@dataclass
class FinetuneOptions:
    """Retrieval / grounding fine-tuning (defaults = the reference recipe, METHOD.md §7)."""

    epochs: int = 10
    lr: float = 3e-5
    batch_size: int = 20
    max_steps: int | None = None
    image_size: int | None = 384  # None keeps the checkpoint's resolution; also the VL tasks' resolution
    vision_lr_mult: float = 1.0
    augment: bool = True
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto: the first CUDA device when there is one, else the CPU
    precision: str = "fp32"  # "bf16" on GPUs (the 4m / 16m presets): autocast forward, fp32 weights
    activation_checkpointing: tuple[str, ...] = ()  # towers among ("vision", "text", "cross")
    devices: int = 1  # processes (GPUs) per fine-tune; > 1: DDP under torchrun (xvlm.pipeline.finetune_launch)


@dataclass
class DownstreamConfig:
    """What the evaluation stage runs and how. ``raw_root``: the downstream files (None: the pre-training
    ``raw_root``; the sample corpus holds every downstream split)."""

    evaluations: tuple[str, ...] = RG_TASKS
    raw_root: str | None = None
    dataset: str = "coco"
    k: int = DEFAULT_K
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # TaskConfig overrides per VL task

    def __post_init__(self) -> None:
        self.evaluations = tuple(self.evaluations)
        if bad := sorted(set(self.evaluations) - set(EVALUATIONS)):
            raise BadInput(f"downstream.evaluations: unknown evaluations {bad}; allowed: {list(EVALUATIONS)}")
        if bad := sorted(set(self.tasks) - set(VL_TASKS)):
            raise BadInput(f"downstream.tasks: unknown tasks {bad}; known: {list(VL_TASKS)}")
        for name, overrides in self.tasks.items():
            check_keys(TaskConfig, overrides, f"downstream.tasks.{name}")

    def task_config(self, task: str) -> TaskConfig:
        """The full ``TaskConfig`` of a VL task: TaskConfig defaults < the task's recipe < the preset."""
        return build(TaskConfig, {**VL_TASK_DEFAULTS[task], **self.tasks.get(task, {})}, f"downstream.tasks.{task}")


@dataclass
class RunConfig(PretrainConfig):
    """A whole pre-training run: the training fields, the corpus recipe and the evaluation stage."""

    recipe: str = "demo"
    downstream: DownstreamConfig = field(default_factory=DownstreamConfig)

    def train_config(self) -> PretrainConfig:
        """The training part, as the training process, its checkpoints and MLflow params see it."""
        names = {f.name for f in dataclasses.fields(PretrainConfig)}
        return copy.deepcopy(PretrainConfig(**{n: getattr(self, n) for n in names}))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return build(cls, d, "preset")


# Where the starting weights live (docs/training.md, "Starting weights"): the 4m / 16m presets name files
# relative to this root, so one environment variable points every preset at a machine's copies.
WEIGHTS_ENV = "XVLM_WEIGHTS"


@dataclass(frozen=True)
class StartWeights:
    """One documented starting file under the weights root."""

    name: str  # the file / folder name the presets use
    what: str
    where: str  # how to get it


START_WEIGHTS: dict[str, StartWeights] = {
    "init_bert": StartWeights(
        "bert-base-uncased",
        "the Hugging Face BERT-base-uncased folder (config.json + model.safetensors or pytorch_model.bin)",
        "huggingface-cli download google-bert/bert-base-uncased --local-dir $XVLM_WEIGHTS/bert-base-uncased"),
    "init_swin": StartWeights(
        "swin_base_patch4_window7_224_22k.pth",
        "Swin-B 224 window 7 ImageNet-22K (Microsoft's release)",
        "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth"
        " (or timm's swin_base_patch4_window7_224.ms_in22k model.safetensors, named in init_swin)"),
}


def weights_root(explicit: str | Path | None = None) -> Path | None:
    """The weights root: ``explicit``, else ``$XVLM_WEIGHTS``, else None (relative paths stay relative)."""
    root = explicit or os.environ.get(WEIGHTS_ENV)
    return Path(root).expanduser() if root else None


def resolve_start_paths(run: RunConfig, root: str | Path | None = None) -> RunConfig:
    """``run`` with relative ``init_bert`` / ``init_swin`` joined to the weights root (in place; returned)."""
    base = weights_root(root)
    for key in START_WEIGHTS:
        value = getattr(run, key)
        if value and base is not None and not Path(value).expanduser().is_absolute():
            setattr(run, key, str(base / value))
    return run


def preset_path(preset: str) -> Path:
    """``configs/pretrain/<preset>.json`` for a name, or the path itself for a ``.json`` path."""
    path = Path(preset) if preset.endswith(".json") else PRESETS / f"{preset}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.json"))
        raise MissingInput(f"{path}: no such pre-training preset (known: {known})")
    return path


def load_preset(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset's JSON (keys starting with ``_`` are comments) with ``overrides`` merged in key by key at
    every depth (``{"downstream": {"finetune": {"max_steps": 20}}}`` changes only that key)."""
    path = preset_path(preset)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from exc
    return merge({k: v for k, v in raw.items() if not k.startswith("_")}, overrides or {})


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in recursively (a dict merges into a dict; anything else replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ``xvlm demo --smoke``: the demo's DAG with every stage, at a fifteenth of the training (a checkpoint every
# 10 steps, of which ``keep_last`` keeps 30 and 40; fine-tunes of 20 steps). The suite's shared demo run; its numbers
# show nothing about learning (the full demo's caption ranking is a slow test, docs/training.md).
SMOKE_OVERRIDES: dict[str, Any] = {"steps": 40, "ckpt_every": 10,
                                   "downstream": {"finetune": {"max_steps": 20}}}


def resolve_run(preset: str, overrides: dict[str, Any] | None = None, steps: int | None = None,
                evaluations: list[str] | None = None, weights_root: str | Path | None = None) -> RunConfig:
    """The ``RunConfig`` a ``pretrain`` call runs: the preset, then ``overrides``, then the explicit
    ``steps`` / ``evaluations`` arguments (None keeps the preset's; ``[]`` skips the evaluation), with
    relative ``init_bert`` / ``init_swin`` under the weights root (``weights_root``, else ``$XVLM_WEIGHTS``)."""
    d = load_preset(preset, {**(overrides or {}), **({"steps": steps} if steps else {})})
    if evaluations is not None:
        d["downstream"] = {**d.get("downstream", {}), "evaluations": list(evaluations)}
    return resolve_start_paths(RunConfig.from_dict(d), weights_root)


def experiment_name(preset: str) -> str:
    """The MLflow experiment of a preset's pre-training runs (``pretrain-demo``, ``pretrain-16m``)."""
    return f"pretrain-{Path(preset).stem}"


def to_json(cfg: Any) -> str:
    """A config tree as the JSON a preset would hold (``--print-config``)."""
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=False, default=str)
