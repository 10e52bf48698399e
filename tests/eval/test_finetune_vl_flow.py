"""One flow end to end: ``finetune-vqa`` on the sample sets logs a linked MLflow run with metrics and PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from xvlm.data.sample_corpus.common import Corpus
from xvlm.data.sample_corpus.downstream_vqa import DownstreamSizes, write_downstream


def test_finetune_vqa_flow_logs_linked_run(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = tmp_path / "data"
    write_downstream(Corpus(data, 0), DownstreamSizes(vqa_train=6, vqa_val=3, vqa_test=2, nlvr_train=2,
                                                      nlvr_dev=2, nlvr_test=2, cap_train=2, cap_val=1, cap_test=1))
    from flows.finetune_vl import finetune_vqa_flow

    out = finetune_vqa_flow(data_root=str(data), out=str(tmp_path / "out"), pretrain_run_id="abc123",
                            config={"max_steps": 3, "epochs": 2, "batch_size": 8, "k_test": 4})
    run = mlflow.get_run(out["run_id"])
    assert run.data.tags["pretrain_run_id"] == "abc123" and run.data.tags["task"] == "vqa"
    assert "final/vqa_acc" in run.data.metrics and run.data.params["k_test"] == "4"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(out["run_id"])}
    assert {"vqa_val_result.json", "vqa_test2015_result.json", "examples"} <= arts
    pngs = mlflow.MlflowClient().list_artifacts(out["run_id"], "examples")
    assert [a.path for a in pngs] == ["examples/vqa_examples.png"]
    assert str(tmp_path) in run.info.artifact_uri
