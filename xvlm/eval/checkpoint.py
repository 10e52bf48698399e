"""Load a checkpoint: the one loading path of evaluation, fine-tuning and ``xvlm.inference.load``.

Accepted inputs (a local file, or a run's ``out_dir`` / ``checkpoints/`` folder, resolved through its
``latest`` pointer by ``resolve_checkpoint``; MLflow URIs are resolved to files by ``flows/evaluate.py``):

- our pre-training checkpoint (``xvlm.train.checkpoint``): ``{"model": state_dict, "config": {"model":
  <variant name>, ...}, "train_state": {"step": ...}, ...}``;
- our fine-tuned checkpoint (``save_eval_checkpoint``): ``{"model", "config": {"model_config": {...}},
  "train_state", "task", "source"}``;
- a bare state dict in our key layout;
- a released reference checkpoint (``{"model": ...}`` with ``text_encoder.bert.*`` / official Swin keys),
  mapped by ``xvlm.models.weights.convert_reference_checkpoint`` (strictly: every parameter must map).

- an exported folder (``xvlm export`` / ``xvlm import-reference``: ``model.safetensors`` + ``config.json``).

The model config, one rule (``_model_config``): the checkpoint's own (``model_info.model_config``, or for
older files ``config.model_config`` / the variant plus its ``model_overrides``, applied once); ``model``
(a registered variant name, a config JSON file or an ``XVLMConfig``) is needed only where the checkpoint
has none (released files) and otherwise must agree with it: a different config is ``BadInput`` naming the
fields unless ``allow_config_change`` (``--allow-config-change``), and then it is logged. Every file
is read with ``torch.load(weights_only=True)``: all our layouts and the released files are tensors in
plain containers, so nothing needs unpickling of arbitrary objects.

Fine-tuning runs at a larger resolution than pre-training (384 vs 224, METHOD.md §7): ``image_size``
builds the model with ``window_size = image_size / 32`` (7 at 224, 12 at 384) and every Swin relative-
position-bias table is resized with ``resize_rel_pos_table`` (timm's resize, the reference's method).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xvlm.errors import BadInput, MissingInput
from xvlm.fsio import atomic_path, load_tensors
from xvlm.models.config import XVLMConfig, get_config, load_config_file
from xvlm.models.weights import convert_reference_checkpoint, resize_rel_pos_table
from xvlm.models.xvlm import XVLM
from xvlm.train.checkpoint import latest_checkpoint, model_info

log = logging.getLogger(__name__)
_REFERENCE_KEY = re.compile(r"^text_encoder\.(bert\.|cls\.)|^vision_encoder\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$")
_OURS_KEY = re.compile(r"^(text_encoder\.layer\.|cross_encoder\.layer\.)")
_TABLE = "relative_position_bias_table"
EXPORTED_WEIGHTS = "model.safetensors"  # the weights file of an exported folder (xvlm.exchange)


@dataclass
class LoadedCheckpoint:
    """A model ready for fine-tuning / evaluation and where it came from."""

    model: XVLM
    source: str
    kind: str  # "pretrain" | "finetune" | "state_dict" | "reference"
    step: int | None
    config: dict[str, Any] = field(default_factory=dict)  # the checkpoint's own config dict, if any
    resized: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # its ``model_info`` (empty for older / released files)


def config_at_resolution(cfg: XVLMConfig, image_size: int | None) -> XVLMConfig:
    """``cfg`` with the vision tower at ``image_size`` (window = last-stage grid, as 224/7 and 384/12)."""
    if image_size is None or image_size == cfg.vision.img_size:
        return cfg
    stride = cfg.vision.stride
    if image_size % stride:
        raise BadInput(f"image_size {image_size} is not a multiple of the vision stride {stride}")
    return cfg.replace(vision={"img_size": image_size, "window_size": image_size // stride},
                       name=f"{cfg.name}@{image_size}")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a file, a ``checkpoints/`` folder or a run's ``out_dir`` (via ``latest``)."""
    path = Path(path)
    if path.is_file() or (path / EXPORTED_WEIGHTS).is_file():  # a file, or an exported folder
        return path
    for d in (path, path / "checkpoints"):
        target = latest_checkpoint(d)
        if target is not None:
            return target
    raise MissingInput(f"checkpoint not found: {path} (a file, or a folder with checkpoints/latest)")


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a checkpoint file (a dict; a bare state dict is wrapped), or an
    exported folder (``xvlm.exchange``). ``mmap``: map rather than read (``fsio.load_tensors``)."""
    if Path(path).is_dir():
        from xvlm.exchange import read_exported

        return read_exported(path)
    obj = load_tensors(path, "checkpoint", mmap=mmap)  # one line naming a text / corrupt / truncated file
    if not isinstance(obj, Mapping):
        raise BadInput(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    if "model" not in obj and all(isinstance(v, Tensor) for v in obj.values()):
        return {"model": dict(obj)}
    if not isinstance(obj.get("model"), Mapping):
        raise BadInput(f"{path}: no 'model' state dict in the checkpoint (keys {sorted(obj)[:8]})")
    return dict(obj)


def _named_config(model: str) -> XVLMConfig:
    """A registered variant name, or a config JSON file."""
    if model.endswith(".json") and Path(model).is_file():
        return load_config_file(Path(model))
    return get_config(model)


def own_model_config(ckpt: Mapping[str, Any]) -> XVLMConfig | None:
    """The checkpoint's own model config, overrides applied once: ``model_info.model_config`` (every
    checkpoint since 0.2 and exported folders), else a fine-tuned checkpoint's ``config.model_config``,
    else an older pre-training checkpoint's variant name plus its ``model_overrides`` (e.g. the demo's
    sin-cos position embedding, a non-persistent buffer: without the override the weights would load
    cleanly into a different model); None when the checkpoint does not say (released reference files)."""
    info = ckpt.get("model_info")
    if isinstance(info, Mapping) and isinstance(info.get("model_config"), Mapping):
        return XVLMConfig.from_dict(dict(info["model_config"]))
    conf = ckpt.get("config") or {}
    if isinstance(conf.get("model_config"), Mapping):
        return XVLMConfig.from_dict(dict(conf["model_config"]))
    if isinstance(conf.get("model"), str):
        cfg = get_config(conf["model"])
        overrides = conf.get("model_overrides") or {}
        return cfg.replace(**overrides) if overrides else cfg
    return None


def config_differences(own: XVLMConfig, asked: XVLMConfig) -> list[str]:
    """``"field: checkpoint -> asked"`` for every model-config field (dotted) that differs, name aside."""
    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
        return out

    a, b = flat(own.to_dict()), flat(asked.to_dict())
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if k != "name" and a.get(k) != b.get(k)]


def _model_config(ckpt: Mapping[str, Any], model: str | XVLMConfig | None, path: Path,
                  allow_config_change: bool = False) -> XVLMConfig:
    """One rule: the checkpoint's own config (``own_model_config``); ``model`` names the config to use
    when the checkpoint has none, and is otherwise only a check: a config that differs from the
    checkpoint's is an error naming the fields, unless ``allow_config_change`` (then it is logged)."""
    own = own_model_config(ckpt)
    if model is None:
        if own is None:
            raise BadInput(f"{path}: the checkpoint does not name its model config; pass variant=<config name> "
                           "(model= in load_checkpoint, --model on the command line)")
        return own
    if own is not None and isinstance(model, str) and model == own.name:
        return own  # the checkpoint's own variant, with its overrides
    asked = model if isinstance(model, XVLMConfig) else _named_config(model)
    if own is None:
        return asked
    diff = config_differences(own, asked)
    if diff and not allow_config_change:
        raise BadInput(f"{path}: its model config {own.name!r} differs from the asked {asked.name!r} in "
                       f"{'; '.join(diff[:8])}; drop --model, or pass --allow-config-change to load it anyway")
    if diff:
        log.warning("%s: loading into %r, which differs from the checkpoint's %r in %s (allowed)", path,
                    asked.name, own.name, "; ".join(diff))
    return asked


def _step(ckpt: Mapping[str, Any]) -> int | None:
    ts = ckpt.get("train_state")
    if isinstance(ts, Mapping) and ts.get("step") is not None:
        return int(ts["step"])
    return int(ckpt["step"]) if "step" in ckpt else None


def resize_tables(sd: dict[str, Tensor], model: XVLM) -> list[str]:
    """Resize, in place, every Swin bias table whose window differs from ``model``'s; returns their keys."""
    ours = model.state_dict()
    resized: list[str] = []
    for k, v in list(sd.items()):
        if k.endswith(_TABLE) and k in ours and ours[k].shape != v.shape:
            side = int(round(ours[k].shape[0] ** 0.5))
            sd[k] = resize_rel_pos_table(v, (side + 1) // 2)
            resized.append(k)
    return resized


def load_checkpoint(path: str | Path, model: str | XVLMConfig | None = None,
                    image_size: int | None = None, allow_config_change: bool = False) -> LoadedCheckpoint:
    """Build the model and load ``path`` strictly (see the module docstring for accepted layouts).

    Args:
        path: a checkpoint file, or a run folder (``resolve_checkpoint``).
        model: variant name, config JSON or config; required for released reference checkpoints (they carry
            a YAML config we do not parse), optional for ours (read from ``config``).
        image_size: build the vision tower at this resolution, resizing the position-bias tables.
    """
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint(path)
    sd = {k: v for k, v in ckpt["model"].items() if isinstance(v, Tensor)}
    is_reference = any(_REFERENCE_KEY.search(k) for k in sd) and not any(_OURS_KEY.match(k) for k in sd)
    if is_reference and model is None:
        raise BadInput(f"{path}: a released (reference-layout) checkpoint; pass variant=<config name> (model= "
                       "in load_checkpoint, --model on the command line), e.g. xvlm-base (xvlm-base-384 for "
                       "fine-tuned ones)")
    cfg = config_at_resolution(_model_config(ckpt, model, path, allow_config_change), image_size)
    net = XVLM(cfg)
    if is_reference:
        converted, report = convert_reference_checkpoint(sd, net)
        if report.unmapped or report.new:
            raise BadInput(f"{path}: reference checkpoint does not fit {cfg.name!r}: {report.summary()}; "
                           f"unmapped {report.unmapped[:5]}, missing {report.new[:5]}")
        net.load_state_dict(converted, strict=True)
        info = model_info(cfg.to_dict(), cfg.vision.img_size, [report.to_dict()], False)
        return LoadedCheckpoint(net, str(path), "reference", _step(ckpt), {}, report.resized, info)
    resized = resize_tables(sd, net)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise BadInput(f"{path}: weights do not fit {cfg.name!r}: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    conf = dict(ckpt.get("config") or {})
    kind = ckpt.get("kind") or ("finetune" if "task" in ckpt else "pretrain" if "train_state" in ckpt
                                else "state_dict")
    return LoadedCheckpoint(net, str(path), kind, _step(ckpt), conf, resized, dict(ckpt.get("model_info") or {}))


def save_eval_checkpoint(path: str | Path, model: XVLM, *, task: str, step: int, source: str,
                         extra: Mapping[str, Any] | None = None, start: Mapping[str, Any] | None = None) -> Path:
    """Write a fine-tuned model that ``load_checkpoint`` reads back (self-describing config), atomically.

    ``start``: the source checkpoint's ``model_info`` (``LoadedCheckpoint.info``): its start's LoadReports
    and ``from_scratch`` travel on, so a fine-tuned file still says where its weights began."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = start or {}
    info = model_info(model.cfg.to_dict(), model.cfg.vision.img_size, list(start.get("init") or []),
                      start.get("from_scratch"))
    state = {"model": model.state_dict(), "config": {"model_config": model.cfg.to_dict(), **(extra or {})},
             "train_state": {"step": int(step)}, "task": task, "source": source, "model_info": info}
    with atomic_path(path) as tmp:  # fsync'ed before the rename (xvlm.fsio)
        torch.save(state, tmp)
    return path
