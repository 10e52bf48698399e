"""Checkpoint exchange: self-describing exported folders, their model card, and ``xvlm checkpoint info``.

An exported folder (``xvlm export CKPT DIR``, ``xvlm import-reference FILE DIR``) holds everything a model
needs to be used without this repository's run folders:

    model.safetensors   the weights in our key layout (no pickle; loads bit-identically)
    config.json         format / version, the ``model_info`` (full model config, image resolution,
                        tokenizer vocabulary sha256, the LoadReports of its start, from_scratch), the text
                        preprocessing (max_words, max_tokens), kind, step, source file and its sha256
    vocab.txt           the tokenizer's vocabulary (its sha256 is in config.json)
    README.md           a model card stub: data recipe, steps, start, evaluation results if any

``xvlm.eval.checkpoint.load_checkpoint`` (so inference and evaluation) accepts such a folder wherever it
accepts a checkpoint file. Why a folder and safetensors: users of the reference asked again and again for
checkpoints that carry their config and resolution, and a pickle-free format is what other tools read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xvlm import fsio
from xvlm.errors import BadInput, MissingInput, OutputExists
from xvlm.eval.checkpoint import (
    EXPORTED_WEIGHTS,
    LoadedCheckpoint,
    load_checkpoint,
    own_model_config,
    read_checkpoint,
    resolve_checkpoint,
)
from xvlm.models.xvlm import XVLM

FORMAT = "xvlm-export"
VERSION = 1
DEFAULT_MAX_WORDS = DEFAULT_MAX_TOKENS = 40  # = xvlm.inference's (the reference's fine-tuning configs)


def _data(conf: dict[str, Any]) -> dict[str, int]:
    data = conf.get("data") if isinstance(conf.get("data"), dict) else {}
    return {"max_words": int(data.get("max_words", DEFAULT_MAX_WORDS)),
            "max_tokens": int(data.get("max_tokens", DEFAULT_MAX_TOKENS))}


def write_folder(out_dir: str | Path, model: XVLM, info: dict[str, Any], card: dict[str, Any],
                 overwrite: bool = False) -> Path:
    """Write ``model`` as an exported folder; ``card``: kind, step, source, source_sha256, data, recipe,
    results (what the README and config.json say besides ``info``)."""
    from safetensors.torch import save_file

    from xvlm.tokenizer import default_vocab_path, vocab_sha256

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExists(f"{out}: not empty; pass --overwrite to replace the exported files")
    if info.get("vocab_sha256") not in (None, vocab_sha256()):
        raise BadInput(f"{card.get('source')}: trained with a vocabulary (sha256 {info['vocab_sha256'][:16]}) "
                       "other than bert-base-uncased's; export it with that vocab.txt by hand")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with fsio.atomic_path(out / EXPORTED_WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "xvlm": FORMAT})
    doc = {"format": FORMAT, "version": VERSION, "model_info": {**info, "vocab_sha256": vocab_sha256()}, **card}
    fsio.write_json(out / "config.json", doc)
    fsio.write_bytes(out / "vocab.txt", default_vocab_path().read_bytes())
    fsio.write_text(out / "README.md", model_card(doc))
    return out


def model_card(doc: dict[str, Any]) -> str:
    """The README stub of an exported folder (fields a model card needs; fill in the rest by hand)."""
    info = doc["model_info"]
    mc = info["model_config"]
    start = ["- from scratch (from_scratch: true)"] if info.get("from_scratch") else []
    start += [f"- `{r['source']}` (sha256 `{r.get('sha256', '')[:16]}`): loaded {len(r['loaded'])}, "
              f"new {len(r['new'])}, dropped {len(r['dropped'])}, unmapped {len(r['unmapped'])}"
              for r in info.get("init") or []]
    results = doc.get("results") or {}
    lines = [
        f"# X-VLM `{mc['name']}`", "",
        "Exported by `xvlm export` / `xvlm import-reference` (X-VLM: Zeng, Zhang, Li, ICML 2022).", "",
        "| field | value |", "| --- | --- |",
        f"| kind | {doc.get('kind')} |", f"| steps | {doc.get('step')} |",
        f"| data recipe | {doc.get('recipe') or 'not recorded'} |",
        f"| image resolution | {info['image_res']} px |",
        f"| vision | Swin embed {mc['vision']['embed_dim']}, depths {mc['vision']['depths']}, "
        f"window {mc['vision']['window_size']} |",
        f"| text | {mc['text']['num_text_layers']} + {mc['text']['num_cross_layers']} layers, hidden "
        f"{mc['text']['hidden_size']} |",
        f"| tokenizer | bert-base-uncased WordPiece (vocab sha256 `{info['vocab_sha256'][:16]}`) |",
        f"| source | `{doc.get('source')}` (sha256 `{(doc.get('source_sha256') or '')[:16]}`) |", "",
        "## Start", "", *(start or ["- not recorded"]), "",
        "## Evaluation results", "",
        *([f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in sorted(results.items())]
          or ["- none recorded"]), "",
        "## Use", "", "```python", "from xvlm.inference import load",
        "p = load('THIS_FOLDER')", "p.score('image.jpg', ['a caption', 'another caption'])", "```", "",
    ]
    return "\n".join(lines)


def _card(loaded: LoadedCheckpoint, raw: dict[str, Any], path: Path) -> dict[str, Any]:
    conf = loaded.config
    tags = conf.get("tags") if isinstance(conf.get("tags"), dict) else {}
    return {"kind": loaded.kind, "step": loaded.step, "source": str(path),
            "source_sha256": fsio.sha256_file(path) if path.is_file() else None, "data": _data(conf),
            "recipe": tags.get("recipe") or conf.get("recipe"), "task": raw.get("task"),
            "results": conf.get("results") or {}}


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """``xvlm export``: any checkpoint we can load (ours, old or new) -> an exported folder."""
    path = resolve_checkpoint(checkpoint)
    raw = read_checkpoint(path, mmap=True)
    loaded = load_checkpoint(path)
    info = loaded.info or _legacy_info(raw, loaded)
    return write_folder(out_dir, loaded.model, info, _card(loaded, raw, path), overwrite)


def _legacy_info(raw: dict[str, Any], loaded: LoadedCheckpoint) -> dict[str, Any]:
    """``model_info`` for a checkpoint written before it existed: what can still be said (no start)."""
    from xvlm.train.checkpoint import model_info

    cfg = loaded.model.cfg
    return model_info(cfg.to_dict(), cfg.vision.img_size, [], raw.get("config", {}).get("from_scratch"))


def import_reference(file: str | Path, out_dir: str | Path, model: str, overwrite: bool = False) -> tuple[Path, Any]:
    """``xvlm import-reference``: a released X-VLM checkpoint, converted strictly (0 unmapped, 0 new keys,
    tied pairs checked), as an exported folder; returns the folder and the conversion's LoadReport."""
    from xvlm.models.weights import LoadReport

    path = Path(file)
    loaded = load_checkpoint(path, model=model)
    if loaded.kind != "reference":
        raise BadInput(f"{path}: not a released (reference-layout) checkpoint; use `xvlm export` for ours")
    card = {"kind": "reference", "step": loaded.step, "source": str(path), "source_sha256": fsio.sha256_file(path),
            "data": _data({}), "recipe": None, "task": None, "results": {}}
    return write_folder(out_dir, loaded.model, loaded.info, card, overwrite), LoadReport.from_dict(loaded.info["init"][0])


def read_exported(folder: str | Path) -> dict[str, Any]:
    """An exported folder as the checkpoint dict ``load_checkpoint`` reads (``model``, ``model_info``,
    ``config.data``, ``train_state.step``, ``kind``)."""
    from xvlm.tokenizer import vocab_sha256

    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file() or not (folder / EXPORTED_WEIGHTS).is_file():
        raise MissingInput(f"{folder}: not an exported folder (needs {EXPORTED_WEIGHTS} and config.json)")
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("model_info"), dict):
        raise BadInput(f"{cfg_path}: not an xvlm export config (format {FORMAT!r} with model_info)")
    if doc["model_info"].get("vocab_sha256") != vocab_sha256():
        raise BadInput(f"{cfg_path}: its vocabulary (sha256 {str(doc['model_info'].get('vocab_sha256'))[:16]}) "
                       "is not bert-base-uncased's, the one the tokenizer uses")
    sd = fsio.load_tensors(folder / EXPORTED_WEIGHTS, "exported weights file")
    return {"model": sd, "model_info": doc["model_info"], "config": {"data": doc.get("data") or {},
            "results": doc.get("results") or {}}, "train_state": {"step": doc.get("step")},
            "kind": "exported", "source": doc.get("source")}


def checkpoint_info(checkpoint: str | Path) -> list[str]:
    """``xvlm checkpoint info``: what a checkpoint says about itself, one fact per line."""
    path = resolve_checkpoint(checkpoint)
    raw = read_checkpoint(path, mmap=True)
    info = raw.get("model_info") if isinstance(raw.get("model_info"), dict) else None
    ts = raw.get("train_state") if isinstance(raw.get("train_state"), dict) else {}
    conf = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    lines = [f"file: {path}", f"keys: {', '.join(sorted(raw))}", f"step: {ts.get('step')}",
             f"tensors: {len(raw['model'])}"]
    own = own_model_config(raw) if info or conf else None
    if own is not None:
        lines.append(f"model config: {own.name} {json.dumps(own.to_dict(), default=str)}")
    else:
        lines.append("model config: not recorded (a released or bare file: pass --model to use it)")
    if info is None:
        lines.append("model_info: not recorded (a checkpoint from before model_info; it still loads)")
        return lines
    lines += [f"image resolution: {info.get('image_res')}", f"vocab sha256: {info.get('vocab_sha256')}",
              f"from_scratch: {info.get('from_scratch')}"]
    from xvlm.models.weights import LoadReport

    lines += [f"start: {LoadReport.from_dict(r).summary()} sha256 {r.get('sha256', '')}" for r in info.get("init") or []]
    if not info.get("init"):
        lines.append("start: no LoadReport (from scratch, or not recorded)")
    return lines
