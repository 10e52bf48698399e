"""The ``pretrain`` flow ends with the evaluation stage: linked MLflow runs, and a rerun that reuses them."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from xvlm.configtree import build
from xvlm.pipeline.config import DownstreamConfig
from xvlm.pipeline.evaluation import evaluation_key
from xvlm.tracking import runs_exist

TINY = {"steps": 2, "ckpt_every": 2, "data": {"batch_texts": 8},
        "downstream": {"k": 4, "finetune": {"epochs": 1, "max_steps": 2, "batch_size": 8, "lr": 1e-3,
                                            "image_size": None, "vision_lr_mult": 0.1, "augment": False}}}


@pytest.fixture()
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the train stage reads the environment
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def _eval_runs() -> dict[str, mlflow.entities.Run]:
    return {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["xvlm-eval"], output_format="list")}


def test_pretrain_evaluates_its_checkpoint_once_and_links_the_runs(prefect_harness, one_thread, tracking: str,
                                                                   tmp_path: Path) -> None:
    from flows.pretrain import pretrain

    result = pretrain(preset="demo", work_dir=str(tmp_path / "work"), overrides=TINY)
    pre_run = result["mlflow_runs"]["pretrain"]
    ev = result["evaluation"]
    assert pre_run and ev["pretrain_run_id"] == pre_run and ev["skipped"] is False
    assert ev["checkpoint"].endswith("step-00000002.pt")
    runs = _eval_runs()
    assert set(runs) == {"evaluate-retrieval-coco", "evaluate-grounding", "finetune-retrieval-coco",
                         "finetune-grounding"}
    for r in runs.values():
        assert r.info.status == "FINISHED"
        assert r.data.tags["pretrain_run_id"] == pre_run     # visible in the UI next to the pre-training run
        assert r.data.tags["checkpoint_step"] == "2"
    assert runs["finetune-retrieval-coco"].data.params["max_steps"] == "2"
    assert sorted(result["mlflow_runs"]["evaluation"]) == sorted(r.info.run_id for r in runs.values())
    assert ev["retrieval"]["run_id"] == runs["finetune-retrieval-coco"].info.run_id
    assert 0.0 <= ev["grounding"]["metrics"]["val/acc_iou50"] <= 100.0
    marker = Path(ev["out"]) / "result.json"
    assert marker.is_file() and Path(ev["out"]).parent == tmp_path / "work" / "eval"

    again = pretrain(preset="demo", work_dir=str(tmp_path / "work"), overrides=TINY)
    assert again["train"]["step"] == 2 and again["mlflow_runs"]["pretrain"] == pre_run   # resumed, no step
    assert again["evaluation"]["skipped"] is True
    assert again["evaluation"]["retrieval"]["run_id"] == ev["retrieval"]["run_id"]
    assert len(_eval_runs()) == 4                                       # nothing evaluated twice


def settings(section: dict, evaluations: list[str] | None = None) -> DownstreamConfig:
    """A preset's ``downstream`` section through the one strict loader (``evaluations``: the CLI option)."""
    return build(DownstreamConfig, {**section, **({"evaluations": evaluations} if evaluations is not None else {})},
                 "downstream")


def test_evaluation_key_changes_with_checkpoint_bytes_and_settings(tmp_path: Path) -> None:
    ckpt = tmp_path / "a.pt"
    ckpt.write_bytes(b"weights-1")
    base = settings({"k": 16})
    key = evaluation_key(str(ckpt), str(tmp_path), "xvlm-debug", base)
    assert key == evaluation_key(str(ckpt), str(tmp_path), "xvlm-debug", settings({"k": 16}))
    assert key != evaluation_key(str(ckpt), str(tmp_path), "xvlm-debug", settings({"k": 8}))
    assert key != evaluation_key(str(ckpt), str(tmp_path), "xvlm-debug",
                                 settings({"k": 16, "evaluations": ["retrieval"]}))
    assert key != evaluation_key(str(ckpt), str(tmp_path / "other"), "xvlm-debug", base)
    ckpt.write_bytes(b"weights-2")
    assert key != evaluation_key(str(ckpt), str(tmp_path), "xvlm-debug", base)


@pytest.mark.parametrize(("section", "evaluations", "message"), [
    ({}, ["retrieval", "vqa2"], r"unknown evaluations \['vqa2'\]"),
    ({"finetune": {"lr": 1e-3, "epoch": 2}}, None, r"downstream.finetune.*\['epoch'\]"),
    ({"tasks": {"vqa": {"k_tset": 4}}}, None, r"downstream.tasks.vqa.*\['k_tset'\]"),
    ({"tasks": {"gqa": {}}}, None, r"unknown tasks \['gqa'\]"),
    ({"kk": 3}, None, r"unknown keys \['kk'\]"),
])
def test_downstream_settings_reject_typos_before_training(section: dict, evaluations: list[str] | None,
                                                           message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(section, evaluations)


def test_presets_downstream_sections_are_valid_and_follow_the_paper() -> None:
    from xvlm.pipeline.config import load_preset

    demo = settings(load_preset("demo")["downstream"])
    assert demo.evaluations == ("retrieval", "grounding") and demo.finetune.image_size is None
    for name in ("4m", "16m"):
        s = settings(load_preset(name)["downstream"])
        assert s.k == 256 and s.finetune.image_size == 384                      # METHOD.md §7
        assert (s.finetune.lr, s.finetune.epochs, s.finetune.batch_size) == (3e-5, 10, 20)
        assert s.tasks["vqa"]["lr"] == 5e-5 and s.tasks["caption"] == {"epochs": 5, "lr": 1e-5,
                                                                        "label_smoothing": 0.1, "beam_size": 3,
                                                                        "precision": "bf16"}
        assert s.finetune.precision == "bf16" and all(s.task_config(t).precision == "bf16" for t in s.tasks)


def test_a_marker_is_trusted_only_while_its_runs_exist(tracking: str) -> None:
    with mlflow.start_run() as kept:
        pass
    with mlflow.start_run() as gone:
        pass
    assert runs_exist([kept.info.run_id, gone.info.run_id])
    mlflow.delete_run(gone.info.run_id)
    assert not runs_exist([kept.info.run_id, gone.info.run_id])
    assert not runs_exist(["0123456789abcdef0123456789abcdef"])


def test_printed_lines_name_every_number_and_its_run() -> None:
    from xvlm.pipeline.retrieval_grounding import format_downstream
    from xvlm.pipeline.vl_tasks import format_vl

    (line,) = format_vl({"vqa": {"metrics": {"vqa_acc": 2.56, "vqa_acc/yes/no": 50.0}, "run_id": "r1"}})
    assert line == "vqa (fine-tuned):" + " " * 28 + "vqa_acc 2.6, yes/no 50.0  [mlflow run r1]"
    only_grounding = format_downstream({"zero_shot": {"grounding": {"metrics": {"val/acc_iou50": 12.34,
                                                                                "val/miou": 20.0},
                                                                    "run_id": "z1"}}})
    assert only_grounding == "grounding (zero-shot, Acc@IoU>=0.5):" + " " * 9 + "val/acc_iou50 12.3  [mlflow run z1]"


def test_evaluation_loads_the_model_as_pre_trained_with_its_overrides(tmp_path: Path) -> None:
    from xvlm.eval.checkpoint import load_checkpoint
    from xvlm.models.config import get_config
    from xvlm.models.xvlm import XVLM

    overrides = {"vision": {"pos_embed": "sincos"}}      # a non-persistent buffer: not in the state dict
    net = XVLM(get_config("xvlm-debug").replace(**overrides))
    ckpt = tmp_path / "step-00000001.pt"
    torch.save({"model": net.state_dict(), "config": {"model": "xvlm-debug", "model_overrides": overrides},
                "train_state": {"step": 1}}, ckpt)
    for model in (None, "xvlm-debug"):                   # the stage names the preset's model
        loaded = load_checkpoint(ckpt, model=model).model
        assert loaded.cfg.vision.pos_embed == "sincos"
        assert torch.equal(loaded.vision_encoder.abs_pos, net.vision_encoder.abs_pos)


def test_loss_windows_average_each_loss_over_the_updates_that_computed_it() -> None:
    from xvlm.pipeline.stages import loss_windows

    # alternating: image-text updates (no bbox: logged 0) and region updates in between
    losses = [{"step": 1, "update": 1, "itc": 4.0, "bbox_l1": 0.0, "loss": 4.0},
              {"step": 1, "update": 2, "itc": 3.0, "bbox_l1": 0.9, "loss": 3.9},
              {"step": 2, "update": 3, "itc": 2.0, "bbox_l1": 0.0, "loss": 2.0},
              {"step": 2, "update": 4, "itc": 1.0, "bbox_l1": 0.5, "loss": 1.5},
              {"step": 3, "update": 5, "itc": 0.0, "bbox_l1": 0.3, "loss": 0.3}]
    first, last = loss_windows(losses, n=2)
    assert first == pytest.approx({"itc": 3.5, "bbox_l1": 0.7})   # (4 + 3) / 2, (0.9 + 0.5) / 2
    assert last == pytest.approx({"itc": 1.5, "bbox_l1": 0.4})    # (2 + 1) / 2, (0.5 + 0.3) / 2
    assert loss_windows([]) == ({}, {})
