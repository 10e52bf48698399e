"""Weight loading: BERT and Swin initialisation, and conversion of released X-VLM checkpoints.

Three sources, one report type (``LoadReport``) that names every tensor that was loaded, left new,
dropped on purpose (documented) or unmapped (anything else; never silent):

- ``load_bert(model, dir)``: a local Hugging Face BERT directory. Layers 0..k-1 -> text encoder, layers
  k.. -> the cross encoder's self-attention / FFN; cross-attention stays newly initialised and is reported.
- ``load_swin(model, path)``: an official Microsoft or timm Swin checkpoint through timm's
  ``checkpoint_filter_fn`` (which also resizes relative-position-bias tables for other windows).
- ``convert_reference_checkpoint(path, model)``: the released X-VLM ``{'model': ...}`` files (METHOD.md §8).

Everything is read with ``torch.load(weights_only=True)`` or safetensors. Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.layers import resize_rel_pos_bias_table
from timm.models.swin_transformer import checkpoint_filter_fn
from torch import Tensor

from xvlm.errors import BadInput, BadKey, MissingInput
from xvlm.fsio import load_tensors, sha256_file
from xvlm.models.xvlm import XVLM

StateDict = dict[str, Tensor]

# Checkpoint entries dropped on purpose: recomputed buffers and BERT's unused pooler / NSP head.
_DROPPED = re.compile(r"(relative_position_index|attn_mask|position_ids)$|(^|\.)pooler\.|cls\.seq_relationship\.")
_SWIN_BUFFER = re.compile(r"(relative_position_index|attn_mask)$")
# Tied aliases: the MLM decoder's weight is the word embeddings and its bias is ``cls.predictions.bias``, in
# BERT and in the reference alike. Both names map onto our one tensor; they are placed after their canonical
# partner, so a pair that differs keeps the canonical tensor and reports the alias (``LoadReport.conflicts``).
_TIED_ALIAS = re.compile(r"cls\.predictions\.decoder\.(weight|bias)$")
# Our keys a start from BERT-base + Swin-B leaves at their initialisation (METHOD.md §2): cross-attention,
# the ITC projections, the ITM / bbox heads and the temperature. Any other new key is a wrong file.
DOCUMENTED_NEW = re.compile(r"\.crossattention\.|^(vision_proj|text_proj|itm_head|bbox_head)\.|^temp$")


@dataclass
class LoadReport:
    """What happened to every tensor of one source file. ``unmapped`` should be empty; callers decide.

    Every checkpoint key is counted exactly once: as the source of a ``loaded`` key of ours, in
    ``dropped`` (documented buffers and heads, and tied aliases found equal to their partner) or in
    ``unmapped`` (anything else, including tied aliases that differ; those are also in ``conflicts``), so
    ``loaded + dropped + unmapped == checkpoint_keys`` (``balanced``). Keys keep their full prefixes.
    """

    source: str
    sha256: str = ""  # of the weights file ("" for an in-memory state dict)
    checkpoint_keys: int = 0  # tensors in the source
    loaded: list[str] = field(default_factory=list)  # our keys filled from the checkpoint
    new: list[str] = field(default_factory=list)  # our keys left at their initialisation
    dropped: list[str] = field(default_factory=list)  # checkpoint keys dropped on purpose (documented)
    unmapped: list[str] = field(default_factory=list)  # checkpoint keys with no place in our model
    resized: list[str] = field(default_factory=list)  # our keys whose tensor was resized
    conflicts: list[str] = field(default_factory=list)  # "alias != canonical": tied pairs that differ

    def summary(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)}, new {len(self.new)}, dropped {len(self.dropped)}, "
                f"unmapped {len(self.unmapped)}{' ' + str(self.unmapped[:8]) if self.unmapped else ''}, "
                f"resized {len(self.resized)}"
                + (f", tied pairs that differ {self.conflicts}" if self.conflicts else ""))

    def balanced(self) -> bool:
        """True when every checkpoint key is accounted for exactly once."""
        return len(self.loaded) + len(self.dropped) + len(self.unmapped) == self.checkpoint_keys

    def counts(self) -> dict[str, int]:
        return {"checkpoint_keys": self.checkpoint_keys, "loaded": len(self.loaded), "new": len(self.new),
                "dropped": len(self.dropped), "unmapped": len(self.unmapped), "resized": len(self.resized),
                "conflicts": len(self.conflicts)}

    def undocumented_new(self) -> list[str]:
        """New keys outside ``DOCUMENTED_NEW`` (a start from BERT-base + Swin-B has none)."""
        return [k for k in self.new if not DOCUMENTED_NEW.search(k)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LoadReport:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _place(out: StateDict, origin: dict[str, str], ours_k: str, src_k: str, v: Tensor, report: LoadReport) -> None:
    """Put ``v`` (checkpoint key ``src_k``) at our ``ours_k``; a second source for the same key must be its
    tied partner with an equal tensor (dropped), else it is reported (unmapped + conflicts), never written."""
    if ours_k not in out:
        out[ours_k], origin[ours_k] = v, src_k
    elif out[ours_k].shape == v.shape and torch.equal(out[ours_k], v):
        report.dropped.append(src_k)
    else:
        report.unmapped.append(src_k)
        report.conflicts.append(f"{src_k} != {origin[ours_k]}")


def _tied_last(keys: list[str]) -> list[str]:
    return [k for k in keys if not _TIED_ALIAS.search(k)] + [k for k in keys if _TIED_ALIAS.search(k)]


# --------------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> StateDict:
    """A state dict from ``.safetensors`` or a torch file (``fsio.load_tensors``: ``weights_only=True``, one
    line on a bad file), unwrapping ``{'model': ...}`` / ``{'state_dict': ...}``."""
    obj = load_tensors(path, "weights file")
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise BadInput(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}


# --------------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------------


def bert_key_to_ours(key: str, num_text_layers: int) -> str | None:
    """Map a Hugging Face / reference BERT key to ours; None for keys dropped on purpose.

    Rule: drop a leading ``bert.``; ``embeddings.*`` -> ``text_encoder.embeddings.*``;
    ``encoder.layer.{i}.*`` -> ``text_encoder.layer.{i}.*`` if i < k else ``cross_encoder.layer.{i-k}.*``;
    ``cls.predictions.*`` -> ``mlm_head.predictions.*``; the tied aliases ``cls.predictions.decoder.bias``
    -> the head's bias and ``cls.predictions.decoder.weight`` -> the word embeddings (checked equal by the
    loaders); TF-era ``gamma``/``beta`` -> ``weight``/``bias``. Unknown prefixes are returned unchanged so
    the caller reports them as unmapped.
    """
    if _DROPPED.search(key):
        return None
    key = key.removeprefix("bert.")
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))
    if key.startswith("embeddings."):
        return "text_encoder." + key
    m = re.match(r"encoder\.layer\.(\d+)\.(.*)$", key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        if i < num_text_layers:
            return f"text_encoder.layer.{i}.{rest}"
        return f"cross_encoder.layer.{i - num_text_layers}.{rest}"
    if key == "cls.predictions.decoder.bias":
        return "mlm_head.predictions.bias"
    if key == "cls.predictions.decoder.weight":
        return "text_encoder.embeddings.word_embeddings.weight"
    if key.startswith("cls.predictions."):
        return "mlm_head." + key.removeprefix("cls.")
    return key


def _find_weights(bert_dir: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (bert_dir / name).is_file():
            return bert_dir / name
    raise MissingInput(f"{bert_dir}: no model.safetensors or pytorch_model.bin (a Hugging Face BERT folder)")


def _map_text(sd: Mapping[str, Tensor], ours: Mapping[str, Tensor], num_text_layers: int, report: LoadReport,
              src_prefix: str = "") -> StateDict:
    """BERT-named tensors (keys without ``src_prefix``) -> our keys, with tied aliases checked equal."""
    out: StateDict = {}
    origin: dict[str, str] = {}
    for k in _tied_last(list(sd)):
        new_k = bert_key_to_ours(k, num_text_layers)
        if new_k is None:
            report.dropped.append(src_prefix + k)
        elif new_k in ours and ours[new_k].shape == sd[k].shape:
            _place(out, origin, new_k, src_prefix + k, sd[k], report)
        else:
            report.unmapped.append(src_prefix + k)
    return out


def bert_state(model: XVLM, bert_dir: str | Path) -> tuple[StateDict, LoadReport]:
    """The tensors ``load_bert`` would load, and its report, without touching ``model`` (which may live on
    the meta device: the start check maps BERT-base onto the base model without allocating it)."""
    bert_dir = Path(bert_dir)
    if not (bert_dir / "config.json").is_file():
        raise MissingInput(f"{bert_dir}: no config.json (expected a Hugging Face BERT folder)")
    try:
        hf = json.loads((bert_dir / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{bert_dir / 'config.json'}: not valid JSON ({exc})") from exc
    t = model.cfg.text
    want = {"hidden_size": t.hidden_size, "num_attention_heads": t.num_heads,
            "intermediate_size": t.intermediate_size, "vocab_size": t.vocab_size,
            "num_hidden_layers": t.num_text_layers + t.num_cross_layers}
    for k, v in want.items():
        if hf.get(k) != v:
            raise BadInput(f"{bert_dir / 'config.json'}: {k}={hf.get(k)} but the model's text config needs {v}")
    weights_file = _find_weights(bert_dir)
    sd = read_state_dict(weights_file)
    report = LoadReport(source=str(bert_dir), sha256=sha256_file(weights_file), checkpoint_keys=len(sd))
    ours = model.state_dict()
    mapped = _map_text(sd, ours, t.num_text_layers, report)
    report.loaded = sorted(mapped)
    prefixes = ("text_encoder.", "cross_encoder.", "mlm_head.")
    report.new = sorted(k for k in ours if k.startswith(prefixes) and k not in mapped)
    return mapped, report


def load_bert(model: XVLM, bert_dir: str | Path) -> LoadReport:
    """Initialise the text encoder, cross encoder (except cross-attention) and MLM head from a BERT dir.

    The directory's ``config.json`` must match the model's text config (width, heads, FFN, vocab, and
    num_text_layers + num_cross_layers layers); a mismatch is an error naming the field.
    """
    mapped, report = bert_state(model, bert_dir)
    model.load_state_dict(mapped, strict=False)
    return report


# --------------------------------------------------------------------------------------------------------
# Swin
# --------------------------------------------------------------------------------------------------------


def resize_rel_pos_table(table: Tensor, new_window: int) -> Tensor:
    """Resize a Swin relative-position-bias table (( 2w-1)^2, heads) to window ``new_window``.

    The one resize used everywhere: it is timm's ``resize_rel_pos_bias_table`` (BEiT's geometric-grid
    interpolation, the same method as the reference's ``interpolate_relative_pos_embed``), which timm's
    ``checkpoint_filter_fn`` calls while loading, e.g. 13x13 -> 23x23 per head for 224 -> 384.
    """
    size = 2 * new_window - 1
    return resize_rel_pos_bias_table(table, new_window_size=(new_window, new_window),
                                     new_bias_shape=(size * size, table.shape[1]))


def _swin_into(model: XVLM, sd: Mapping[str, Tensor], report: LoadReport, src_prefix: str = "") -> StateDict:
    """Filter a Swin state dict (official or timm names) for our encoder; record drops and resizes.

    Reported checkpoint keys carry ``src_prefix`` (``vision_encoder.`` inside a released X-VLM file), so
    every name in the report is the file's own. timm's filter renames keys one to one (the official
    layout's downsample moves a stage) and skips only the buffers, so its output lines up with the input.
    """
    enc = model.vision_encoder
    kept: list[str] = []
    for k in sd:
        if k.startswith("head.") or _SWIN_BUFFER.search(k):  # ImageNet classifier; recomputed buffers
            report.dropped.append(src_prefix + k)
        else:
            kept.append(k)
    filtered = checkpoint_filter_fn({k: sd[k] for k in kept}, enc)
    if len(filtered) != len(kept):  # a timm change that drops keys would make the counts lie
        raise RuntimeError(f"timm's Swin filter kept {len(filtered)} of {len(kept)} tensors")
    ours = enc.state_dict()
    out: StateDict = {}
    for src_k, (k, v) in zip(kept, filtered.items(), strict=True):
        if k in ours and ours[k].shape == v.shape:
            out["vision_encoder." + k] = v
            if sd[src_k].shape != v.shape:
                report.resized.append("vision_encoder." + k)
        else:
            report.unmapped.append(src_prefix + src_k)
    return out


def swin_state(model: XVLM, path: str | Path) -> tuple[StateDict, LoadReport]:
    """The tensors ``load_swin`` would load and its report (``new``: Swin parameters the file lacks),
    without touching ``model`` (meta device allowed)."""
    sd = read_state_dict(path)
    report = LoadReport(source=str(path), sha256=sha256_file(path), checkpoint_keys=len(sd))
    out = _swin_into(model, sd, report)
    report.loaded = sorted(out)
    report.new = sorted("vision_encoder." + k for k in model.vision_encoder.state_dict()
                        if "vision_encoder." + k not in out)
    return out, report


def load_swin(model: XVLM, path: str | Path) -> LoadReport:
    """Initialise the vision encoder from an official Microsoft or timm Swin checkpoint.

    Loads strictly within the vision encoder: every Swin parameter must come from the file.
    """
    sd, report = swin_state(model, path)
    if report.new:
        raise BadKey(f"{path}: Swin checkpoint lacks {report.new[:8]}{' ...' if len(report.new) > 8 else ''}")
    model.vision_encoder.load_state_dict({k.removeprefix("vision_encoder."): v for k, v in sd.items()})
    return report


# --------------------------------------------------------------------------------------------------------
# Released X-VLM checkpoints
# --------------------------------------------------------------------------------------------------------

_HEADS = re.compile(r"^(vision_proj|text_proj|itm_head|bbox_head)\.|^temp$")


def convert_reference_checkpoint(path: str | Path | Mapping[str, Tensor], model: XVLM) -> tuple[StateDict, LoadReport]:
    """Map a released X-VLM checkpoint (``{'model': state_dict, 'config': ...}``) to our state dict.

    Prefixes (METHOD.md §8): ``vision_encoder.*`` (official Swin names) -> our Swin via timm's filter,
    resizing bias tables when the window differs; ``text_encoder.bert.*`` / ``text_encoder.cls.*`` (or the
    fine-tuning ``text_encoder.*`` without ``bert.``) -> ``bert_key_to_ours``; heads and ``temp`` keep their
    names. ``model`` supplies the target shapes and the text/cross split; it is not modified.
    """
    sd = dict(path) if isinstance(path, Mapping) else read_state_dict(path)
    report = LoadReport(source="<state dict>" if isinstance(path, Mapping) else str(path),
                        sha256="" if isinstance(path, Mapping) else sha256_file(path), checkpoint_keys=len(sd))
    ours = model.state_dict()
    vision = {k.removeprefix("vision_encoder."): v for k, v in sd.items() if k.startswith("vision_encoder.")}
    out = _swin_into(model, vision, report, "vision_encoder.")
    text = {k.removeprefix("text_encoder."): v for k, v in sd.items() if k.startswith("text_encoder.")}
    out.update(_map_text(text, ours, model.cfg.text.num_text_layers, report, "text_encoder."))
    for k, v in sd.items():
        if k.startswith(("vision_encoder.", "text_encoder.")):
            continue
        if _HEADS.match(k) and k in ours and ours[k].shape == v.shape:
            out[k] = v
        elif _DROPPED.search(k):
            report.dropped.append(k)
        else:
            report.unmapped.append(k)
    report.loaded = sorted(out)
    report.new = sorted(set(ours) - set(out))
    return out, report


def load_reference_checkpoint(model: XVLM, path: str | Path) -> LoadReport:
    """Convert and load strictly (every parameter must come from the file); returns the report."""
    sd, report = convert_reference_checkpoint(path, model)
    model.load_state_dict(sd, strict=True)
    return report


def require_clean_start(report: LoadReport, init_key: str) -> None:
    """``BadInput`` unless ``report`` is a clean start: every checkpoint key accounted for, none unmapped,
    no tied pair that differs, and only ``DOCUMENTED_NEW`` keys left new. ``init_key`` names the config
    field (``init_bert`` / ``init_swin``) so the line says what to fix."""
    problems = []
    if not report.balanced():
        problems.append(f"counts do not add up ({report.counts()})")
    if report.unmapped:
        problems.append(f"{len(report.unmapped)} unmapped tensors {report.unmapped[:5]}")
    if report.conflicts:
        problems.append(f"tied pairs differ {report.conflicts}")
    if undocumented := report.undocumented_new():
        problems.append(f"{len(undocumented)} of our tensors would stay new, beyond the documented "
                        f"cross-attention / projections / heads / temp: {undocumented[:5]}")
    if problems:
        raise BadInput(f"{init_key} {report.source}: not a usable start: {'; '.join(problems)}")
