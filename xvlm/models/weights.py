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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from timm.layers import resize_rel_pos_bias_table
from timm.models.swin_transformer import checkpoint_filter_fn
from torch import Tensor

from xvlm.errors import BadInput, BadKey, MissingInput
from xvlm.models.xvlm import XVLM

StateDict = dict[str, Tensor]

# Checkpoint entries dropped on purpose: recomputed buffers, BERT's unused pooler / NSP head, and the MLM
# decoder weight, which is tied to (identical with) the word embeddings in both models.
_DROPPED = re.compile(
    r"(relative_position_index|attn_mask|position_ids)$|(^|\.)pooler\.|cls\.seq_relationship\.|"
    r"cls\.predictions\.decoder\.weight$")


@dataclass
class LoadReport:
    """What happened to every tensor. ``unmapped`` should be empty; callers decide whether to fail."""

    source: str
    loaded: list[str] = field(default_factory=list)  # our keys filled from the checkpoint
    new: list[str] = field(default_factory=list)  # our keys left at their initialisation
    dropped: list[str] = field(default_factory=list)  # checkpoint keys dropped on purpose (documented)
    unmapped: list[str] = field(default_factory=list)  # checkpoint keys with no place in our model
    resized: list[str] = field(default_factory=list)  # our keys whose tensor was resized

    def summary(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)}, new {len(self.new)}, dropped {len(self.dropped)}, "
                f"unmapped {len(self.unmapped)}{' ' + str(self.unmapped) if self.unmapped else ''}, "
                f"resized {len(self.resized)}")


# --------------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> StateDict:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``), unwrapping
    ``{'model': ...}`` / ``{'state_dict': ...}``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    obj = torch.load(path, map_location="cpu", weights_only=True)
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
    ``cls.predictions.*`` -> ``mlm_head.predictions.*`` (decoder bias -> the head's bias);
    TF-era ``gamma``/``beta`` -> ``weight``/``bias``. Unknown prefixes are returned unchanged so the caller
    reports them as unmapped.
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
    if key.startswith("cls.predictions."):
        return "mlm_head." + key.removeprefix("cls.")
    return key


def _find_weights(bert_dir: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (bert_dir / name).is_file():
            return bert_dir / name
    raise MissingInput(f"{bert_dir}: no model.safetensors or pytorch_model.bin")


def load_bert(model: XVLM, bert_dir: str | Path) -> LoadReport:
    """Initialise the text encoder, cross encoder (except cross-attention) and MLM head from a BERT dir.

    The directory's ``config.json`` must match the model's text config (width, heads, FFN, vocab, and
    num_text_layers + num_cross_layers layers); a mismatch is an error naming the field.
    """
    bert_dir = Path(bert_dir)
    hf = json.loads((bert_dir / "config.json").read_text())
    t = model.cfg.text
    want = {"hidden_size": t.hidden_size, "num_attention_heads": t.num_heads,
            "intermediate_size": t.intermediate_size, "vocab_size": t.vocab_size,
            "num_hidden_layers": t.num_text_layers + t.num_cross_layers}
    for k, v in want.items():
        if hf.get(k) != v:
            raise BadInput(f"{bert_dir / 'config.json'}: {k}={hf.get(k)} but the model's text config needs {v}")
    sd = read_state_dict(_find_weights(bert_dir))
    report = LoadReport(source=str(bert_dir))
    ours = model.state_dict()
    mapped: StateDict = {}
    for k, v in sd.items():
        new_k = bert_key_to_ours(k, t.num_text_layers)
        if new_k is None:
            report.dropped.append(k)
        elif new_k in ours and ours[new_k].shape == v.shape:
            mapped[new_k] = v
        else:
            report.unmapped.append(k)
    model.load_state_dict(mapped, strict=False)
    report.loaded = sorted(mapped)
    prefixes = ("text_encoder.", "cross_encoder.", "mlm_head.")
    report.new = sorted(k for k in ours if k.startswith(prefixes) and k not in mapped)
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


def _swin_into(model: XVLM, sd: StateDict, report: LoadReport, prefix: str = "vision_encoder.") -> StateDict:
    """Filter a Swin state dict (official or timm names) for our encoder; record drops and resizes."""
    enc = model.vision_encoder
    sd = sd.get("model", sd) if isinstance(sd.get("model"), Mapping) else sd
    head = [k for k in sd if k.startswith("head.")]  # ImageNet classifier, not part of X-VLM
    report.dropped += head
    sd = {k: v for k, v in sd.items() if k not in head}
    shapes = {k: v.shape for k, v in sd.items()}
    filtered = checkpoint_filter_fn(sd, enc)
    report.dropped += [k for k in sd if re.search(r"(relative_position_index|attn_mask)$", k)]
    ours = enc.state_dict()
    out: StateDict = {}
    for k, v in filtered.items():
        if k in ours and ours[k].shape == v.shape:
            out[prefix + k] = v
            if k.endswith(("relative_position_bias_table", "patch_embed.proj.weight")) and shapes[k] != v.shape:
                report.resized.append(prefix + k)
        else:
            report.unmapped.append(k)
    return out


def load_swin(model: XVLM, path: str | Path) -> LoadReport:
    """Initialise the vision encoder from an official Microsoft or timm Swin checkpoint.

    Loads strictly within the vision encoder: every Swin parameter must come from the file.
    """
    report = LoadReport(source=str(path))
    sd = _swin_into(model, read_state_dict(path), report)
    missing = sorted(k for k in model.vision_encoder.state_dict() if "vision_encoder." + k not in sd)
    if missing:
        raise BadKey(f"{path}: Swin checkpoint lacks {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    model.vision_encoder.load_state_dict({k.removeprefix("vision_encoder."): v for k, v in sd.items()})
    report.loaded = sorted(sd)
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
    report = LoadReport(source="<state dict>" if isinstance(path, Mapping) else str(path))
    ours = model.state_dict()
    vision = {k.removeprefix("vision_encoder."): v for k, v in sd.items() if k.startswith("vision_encoder.")}
    out = _swin_into(model, vision, report)
    for k, v in sd.items():
        if k.startswith("vision_encoder."):
            continue
        if k.startswith("text_encoder."):
            new_k = bert_key_to_ours(k.removeprefix("text_encoder."), model.cfg.text.num_text_layers)
        elif _HEADS.match(k):
            new_k = k
        else:
            new_k = "" if not _DROPPED.search(k) else None
        if new_k is None:
            report.dropped.append(k)
        elif new_k in ours and ours[new_k].shape == v.shape:
            out[new_k] = v
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
