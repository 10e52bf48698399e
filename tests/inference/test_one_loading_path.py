"""Inference and evaluation load a checkpoint through the one path (``xvlm.eval.checkpoint``): the same
file gives the same weights and model config either way, for a run folder and for a released file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models.test_weights import reference_checkpoint
from xvlm.errors import BadInput, MissingInput
from xvlm.eval.checkpoint import load_checkpoint, resolve_checkpoint
from xvlm.inference import load
from xvlm.models.config import get_config
from xvlm.models.xvlm import XVLM
from xvlm.train.checkpoint import CHECKPOINT_KEYS, save_checkpoint


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_run_folder_same_through_inference_and_evaluation(tmp_path: Path) -> None:
    torch.manual_seed(1)
    overrides = {"vision": {"pos_embed": "sincos"}}
    net = XVLM(get_config("xvlm-debug").replace(**overrides))
    state = dict.fromkeys(CHECKPOINT_KEYS, {})
    state.update(model=net.state_dict(), train_state={"step": 7},
                 config={"model": "xvlm-debug", "model_overrides": overrides, "data": {"max_words": 9}})
    out = tmp_path / "run"
    file = save_checkpoint(out / "checkpoints", 7, state)
    assert resolve_checkpoint(out) == resolve_checkpoint(out / "checkpoints") == file
    p = load(out)
    ev = load_checkpoint(out)
    ev_file = load_checkpoint(file, model="xvlm-debug")  # the same variant keeps the run's overrides
    for loaded in (ev.model, ev_file.model, p.model):
        _same(loaded, net)
    assert p.model.cfg == ev.model.cfg == ev_file.model.cfg == net.cfg
    assert p.model.cfg.vision.pos_embed == "sincos"
    assert (p.step, ev.step, p.source, ev.source) == (7, 7, str(file), str(file))
    assert p.max_words == 9 and ev.kind == "pretrain" and p.kind == "ours"


def test_reference_file_same_through_inference_and_evaluation(tmp_path: Path) -> None:
    ckpt, _, _ = reference_checkpoint(get_config("xvlm-debug"), seed=4)
    path = tmp_path / "ref.th"
    torch.save(ckpt, path)
    for call in (lambda: load(path), lambda: load_checkpoint(path)):
        with pytest.raises(BadInput, match="pass variant="):
            call()
    p, ev = load(path, variant="xvlm-debug"), load_checkpoint(path, model="xvlm-debug")
    _same(p.model, ev.model)
    assert p.model.cfg == ev.model.cfg and p.kind == ev.kind == "reference"


def test_bad_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match="checkpoint not found"):
        load(tmp_path / "nope")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(BadInput, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(BadInput, match="expected a dict checkpoint"):
        load(tmp_path / "list.pt")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-00000001.pt")
    with pytest.raises(MissingInput, match="names step-00000001.pt, which does not exist"):
        load(tmp_path / "run")
