"""Self-contained checkpoints: ``checkpoint info``, export / import-reference folders, one config rule, and
bad files as one line through the real entry point (``flows.cli.main``, in-process)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.models.test_weights import reference_checkpoint
from xvlm.errors import BadInput
from xvlm.eval.checkpoint import load_checkpoint, save_eval_checkpoint
from xvlm.inference import load
from xvlm.models.config import get_config
from xvlm.models.xvlm import XVLM
from xvlm.train.checkpoint import REQUIRED_KEYS, model_info, save_checkpoint

TEXTS = ["a red circle", "two blue squares on the left"]


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``xvlm ARGS`` through the console entry point: (exit code, stdout, stderr)."""
    from flows.cli import main

    monkeypatch.setattr(sys, "argv", ["xvlm", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def _model(seed: int = 0) -> XVLM:
    torch.manual_seed(seed)
    return XVLM(get_config("xvlm-debug").replace(vision={"pos_embed": "sincos"})).eval()  # a non-persistent buffer


def _pretrain_file(folder: Path, model: XVLM, with_info: bool = True) -> Path:
    """A pre-training checkpoint as the loop writes it (optimizer parts empty), or its pre-0.2 layout."""
    cfg = {"model": "xvlm-debug", "model_overrides": {"vision": {"pos_embed": "sincos"}}, "from_scratch": True,
           "data": {"max_words": 30, "max_tokens": 30}, "tags": {"recipe": "demo"}}
    state = {"model": model.state_dict(), "optimizer": {}, "lr_scheduler": {}, "dataloader": {},
             "train_state": {"step": 3}, "rng": [], "config": cfg,
             "model_info": model_info(model.cfg.to_dict(), 96, [], True)}
    if not with_info:
        path = folder / "checkpoints" / "step-00000003.pt"
        path.parent.mkdir(parents=True)
        torch.save({k: state[k] for k in REQUIRED_KEYS}, path)
        return path
    return save_checkpoint(folder / "checkpoints", 3, state)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    Image.fromarray((torch.rand(120, 90, 3) * 255).to(torch.uint8).numpy()).save(path)
    return path


def _outputs(p, image: Path) -> tuple[dict, tuple]:
    return p.score(image, TEXTS), p.ground(image, TEXTS[0])


def test_export_then_load_is_bit_identical(tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _pretrain_file(tmp_path / "run", _model())
    code, out, err = run_main(monkeypatch, capsys, "export", str(tmp_path / "run"), str(tmp_path / "exp"))
    assert code == 0, err
    exp = tmp_path / "exp"
    assert sorted(p.name for p in exp.iterdir()) == ["README.md", "config.json", "model.safetensors", "vocab.txt"]
    doc = json.loads((exp / "config.json").read_text())
    assert doc["model_info"]["model_config"]["vision"]["pos_embed"] == "sincos" and doc["step"] == 3
    assert doc["data"] == {"max_words": 30, "max_tokens": 30} and "| data recipe | demo |" in (exp / "README.md").read_text()
    a, b = load(ckpt), load(exp)
    assert (a.max_words, a.max_tokens) == (b.max_words, b.max_tokens) == (30, 30)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert _outputs(a, image) == _outputs(b, image)  # bitwise: the same floats
    ev = load_checkpoint(exp)  # evaluation's loader takes the folder too
    assert ev.kind == "exported" and ev.model.cfg == a.model.cfg


def test_checkpoint_info_and_old_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    new = _pretrain_file(tmp_path / "new", _model())
    code, out, _ = run_main(monkeypatch, capsys, "checkpoint", "info", str(new))
    assert code == 0 and "image resolution: 96" in out and "from_scratch: True" in out
    assert "model config: xvlm-debug" in out and '"pos_embed": "sincos"' in out
    assert len(next(ln for ln in out.splitlines() if ln.startswith("vocab sha256:")).split()[-1]) == 64
    old = _pretrain_file(tmp_path / "old", _model(), with_info=False)
    code, out, _ = run_main(monkeypatch, capsys, "checkpoint", "info", str(old))
    assert code == 0 and "model_info: not recorded" in out
    assert load_checkpoint(old).model.cfg.vision.pos_embed == "sincos"  # old layout: variant + overrides, once
    ft = save_eval_checkpoint(tmp_path / "ft.pt", _model(), task="retrieval", step=2, source=str(new),
                              start=load_checkpoint(new).info)
    info = load_checkpoint(ft).info
    assert info["from_scratch"] is True and info["image_res"] == 96 and info["model_config"]["name"] == "xvlm-debug"


def test_import_reference_converts_strictly(tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = get_config("xvlm-debug")
    ckpt, _, _ = reference_checkpoint(cfg, seed=4)
    torch.save(ckpt, tmp_path / "xvlm_ref.th")
    code, out, err = run_main(monkeypatch, capsys, "import-reference", str(tmp_path / "xvlm_ref.th"),
                              str(tmp_path / "exp"), "--model", "xvlm-debug")
    assert code == 0, err
    assert ", new 0, " in out and "unmapped 0" in out and "tied pairs" not in out
    ref, folder = load(tmp_path / "xvlm_ref.th", variant="xvlm-debug"), load(tmp_path / "exp")
    assert _outputs(ref, image) == _outputs(folder, image)
    report = json.loads((tmp_path / "exp" / "config.json").read_text())["model_info"]["init"][0]
    assert len(report["loaded"]) + len(report["dropped"]) + len(report["unmapped"]) == len(ckpt["model"])


def test_a_different_model_config_is_an_error_unless_allowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ckpt = _pretrain_file(tmp_path / "run", _model())
    assert load(ckpt, variant="xvlm-debug").model.cfg.vision.pos_embed == "sincos"  # its own variant: its config
    plain = get_config("xvlm-debug").replace(name="plain")
    with pytest.raises(BadInput, match=r"differs from the asked 'plain' in vision\.pos_embed: 'sincos' -> 'none'"):
        load(ckpt, variant=plain)
    with caplog.at_level(logging.WARNING, logger="xvlm.eval.checkpoint"):
        assert load(ckpt, variant=plain, allow_config_change=True).model.cfg.vision.pos_embed == "none"
    assert "vision.pos_embed" in caplog.text and "(allowed)" in caplog.text


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text, corrupt, truncated = folder / "text.pt", folder / "corrupt.pt", folder / "truncated.pt"
    text.write_text("this is a text file, not a checkpoint\n")
    corrupt.write_bytes(bytes(range(256)) * 16)
    torch.save({"model": _model().state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {"text": text, "corrupt": corrupt, "truncated": truncated}


@pytest.mark.parametrize("kind", ["text", "corrupt", "truncated"])
@pytest.mark.parametrize("command", ["evaluate", "score", "ground", "resume"])
def test_a_bad_checkpoint_is_one_line(command: str, kind: str, tmp_path: Path, image: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _bad_files(tmp_path / "bad")[kind]
    args = {"evaluate": ["evaluate", str(bad), str(tmp_path), "--out", str(tmp_path / "eval")],
            "score": ["score", str(image), "a red circle", "--checkpoint", str(bad)],
            "ground": ["ground", str(image), "a red circle", "--checkpoint", str(bad)],
            "resume": ["pretrain", "--preset", "demo", "--work-dir", str(tmp_path / "work"), "--steps", "1",
                       "--evaluation", "none"]}[command]
    if command == "resume":  # the run's latest checkpoint is the bad file
        ckpts = tmp_path / "work" / "train" / "checkpoints"
        ckpts.mkdir(parents=True)
        bad = Path(bad.replace(ckpts / "step-00000001.pt"))
        (ckpts / "latest").write_text(bad.name)
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), err
    assert ("truncated or corrupt" in lines[0]) if kind == "truncated" else ("not a" in lines[0])
