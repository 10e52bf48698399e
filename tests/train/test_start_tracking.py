"""What a pre-training run started from is in MLflow: LoadReport params, the reports artifact, the tag."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from xvlm.models.weights import LoadReport
from xvlm.train.config import PretrainConfig
from xvlm.train.loop import RunInfo, run_tags


def test_load_reports_are_params_and_an_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xvlm.tracking import MLflowCallback

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the same logging calls; SQLite's migrations cost ~10 s

    cfg = PretrainConfig(out_dir=str(tmp_path / "run"), init_bert="/w/bert-base-uncased", init_swin="/w/swin.pth")
    bert = LoadReport("/w/bert-base-uncased", sha256="ab" * 32, checkpoint_keys=5, loaded=["a", "b", "c"],
                      new=["x.crossattention.y"], dropped=["p", "q"])
    swin = LoadReport("/w/swin.pth", sha256="cd" * 32, checkpoint_keys=2, loaded=["v"], dropped=["head.weight"])
    uri = (tmp_path / "mlruns").as_uri()
    cb = MLflowCallback(uri, "pretrain-start", artifact_location=str(tmp_path / "art"), system_metrics=False)
    (tmp_path / "run").mkdir()
    cb.on_train_start(RunInfo(cfg, run_tags(cfg), 10, 1, 0, tmp_path / "run", [bert, swin]))
    mlflow.end_run()
    run = MlflowClient(uri).get_run(cb.run_id)
    p = run.data.params
    assert (p["init_bert.loaded"], p["init_bert.new"], p["init_bert.dropped"], p["init_bert.unmapped"]) == ("3", "1", "2", "0")
    assert p["init_bert.checkpoint_keys"] == "5" and p["init_bert.sha256"] == "ab" * 32
    assert p["init_swin.loaded"] == "1" and p["init_swin.sha256"] == "cd" * 32
    assert run.data.tags["from_scratch"] == "false"
    local = mlflow.artifacts.download_artifacts(run_id=cb.run_id, artifact_path="init/load_reports.json",
                                                dst_path=str(tmp_path / "dl"), tracking_uri=uri)
    doc = json.loads(Path(local).read_text())
    assert doc["from_scratch"] is False and [r["source"] for r in doc["reports"]] == ["/w/bert-base-uncased", "/w/swin.pth"]
    mlflow.set_tracking_uri(None)
