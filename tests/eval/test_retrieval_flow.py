"""The downstream flows log linked MLflow runs: tags point at the pre-training run and checkpoint."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from tests.eval.rg_corpus import sample_corpus
from xvlm.models.xvlm import build_model

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{d / 'mlflow.db'}")
    yield d
    mlflow.set_tracking_uri(None)


def test_downstream_stage_runs_are_linked_to_the_pretraining_run(
        tmp_path_factory: pytest.TempPathFactory, tracking: Path) -> None:
    from flows.evaluate import FinetuneOptions, downstream_stage
    from xvlm.pipeline.retrieval_grounding import format_downstream

    raw = sample_corpus(tmp_path_factory)
    out = tracking / "out"
    torch.manual_seed(0)
    ckpt = tracking / "step-00000007.pt"   # our pre-training checkpoint layout (model + config + train_state)
    torch.save({"model": build_model("xvlm-debug").state_dict(), "config": {"model": "xvlm-debug"},
                "train_state": {"step": 7}}, ckpt)
    exp = mlflow.create_experiment("pretrain", artifact_location=(tracking / "pre-art").as_uri())
    with mlflow.start_run(experiment_id=exp, run_name="pretrain") as pre:
        mlflow.log_artifact(str(ckpt), "checkpoints")
    uri = f"runs:/{pre.info.run_id}/checkpoints/step-00000007.pt"

    opts = FinetuneOptions(epochs=1, max_steps=3, batch_size=16, image_size=None, lr=1e-4, augment=True)
    result = downstream_stage(uri, str(raw), str(out), options=opts, k=8)

    runs = mlflow.search_runs(experiment_names=["xvlm-eval"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"evaluate-retrieval-coco", "evaluate-grounding", "finetune-retrieval-coco",
                            "finetune-grounding"}
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["pretrain_run_id"] == pre.info.run_id
        assert r.data.tags["checkpoint"] == uri
        assert r.data.tags["checkpoint_step"] == "7"
    ft = by_name["finetune-retrieval-coco"]
    assert {"test/txt_r1", "test/img_r1", "test/r_mean", "val/r_mean", "train/itc"} <= set(ft.data.metrics)
    assert ft.data.params["max_steps"] == "3"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(ft.info.run_id, "figures")}
    assert arts == {"figures/tr_top5.png", "figures/ir_top5.png"}
    gr = by_name["finetune-grounding"]
    assert {"val/acc_iou50", "testA/acc_iou50", "testB/acc_iou50"} <= set(gr.data.metrics)
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(gr.info.run_id, "figures")}
    assert "figures/boxes_testA.png" in arts
    text = format_downstream(result)
    assert "retrieval" in text and "grounding" in text and ft.info.run_id in text

    # the fine-tuned checkpoint evaluates through the same flow and keeps the link to pre-training
    from flows.evaluate import evaluate

    again = evaluate(result["grounding"]["checkpoint"], str(raw), str(out), tasks=("grounding",))
    run = mlflow.get_run(again["grounding"]["run_id"])
    assert run.data.tags["pretrain_run_id"] == pre.info.run_id
    assert run.data.tags["checkpoint_kind"] == "finetune"
    assert run.data.metrics["val/acc_iou50"] == pytest.approx(result["grounding"]["metrics"]["val/acc_iou50"])


@pytest.mark.timeout(600)
def test_grounding_finetune_on_two_processes_through_torchrun(tmp_path_factory: pytest.TempPathFactory,
                                                              tracking: Path) -> None:
    """``devices=2``: the fine-tune relaunches itself under torchrun (gloo on CPU); rank 0 alone writes the
    MLflow run and the checkpoint, the other rank's scratch folder is gone, the head returns rank 0's result."""
    from xvlm.eval.checkpoint import load_checkpoint
    from xvlm.pipeline.config import FinetuneOptions
    from xvlm.pipeline.retrieval_grounding import finetune_grounding

    raw = sample_corpus(tmp_path_factory)
    out = tracking / "ddp"
    torch.manual_seed(0)
    ckpt = tracking / "ddp-start.pt"
    torch.save({"model": build_model("xvlm-debug").state_dict(), "config": {"model": "xvlm-debug"},
                "train_state": {"step": 7}}, ckpt)
    opts = FinetuneOptions(epochs=1, max_steps=2, batch_size=4, image_size=None, lr=1e-4, augment=False,
                           devices=2, device="cpu")
    result = finetune_grounding(str(ckpt), str(raw), str(out), options=opts, experiment="ddp-finetune")
    runs = mlflow.search_runs(experiment_names=["ddp-finetune"], output_format="list")
    assert [(r.info.run_name, r.info.status) for r in runs] == [("finetune-grounding", "FINISHED")]
    assert runs[0].info.run_id == result["run_id"] and runs[0].data.params["devices"] == "2"
    assert {"val/acc_iou50", "testA/acc_iou50", "train/bbox_l1"} <= set(runs[0].data.metrics)
    assert load_checkpoint(result["checkpoint"]).model.cfg.name == "xvlm-debug"
    assert not list(out.glob(".rank-*")) and (out / "finetune-grounding.json").is_file()


def test_resolve_device_prefers_cuda_only_when_present(monkeypatch) -> None:
    """The evaluation flows default to ``auto``: a GPU when there is one (base-model fine-tunes), else CPU."""
    import torch

    from xvlm.eval.finetune import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")  # under torchrun: this rank's GPU
    assert resolve_device("auto") == torch.device("cuda", 3)
    assert resolve_device("cpu") == torch.device("cpu")
