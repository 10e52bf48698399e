"""MLflow callback contents, the mlflow-import boundary, and learning on shape scenes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.train.shardgen import write_shards
from tests.train.test_train import small_config
from xvlm.train import train

REPO = Path(__file__).resolve().parents[2]


def test_only_tracking_imports_mlflow() -> None:
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "xvlm").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+mlflow", p.read_text(), re.M) and p.name != "tracking.py"]
    assert offenders == []


def test_mlflow_callback_logs_run(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from xvlm.tracking import MLflowCallback

    shards = write_shards(tmp_path / "shards", 16, 2, size=(128, 96))
    cfg = small_config(tmp_path, shards, steps=3, ckpt_every=2, tags={"recipe_hash": "abc123"})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = MLflowCallback(uri, "pretrain-test", artifact_location=str(tmp_path / "artifacts"),
                        system_metrics=False)
    train(cfg, [cb])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.batch_texts"] == "8" and run.data.params["steps"] == "3"
    assert run.data.tags["recipe_hash"] == "abc123" and len(run.data.tags["git_commit"]) >= 7
    for key in ("loss_itc", "loss_itm", "loss_mlm", "loss_bbox_l1", "loss_bbox_giou", "lr", "samples_per_s",
                "tokens_per_s"):
        hist = client.get_metric_history(cb.run_id, key)
        assert [m.step for m in hist] == [1, 2, 3], key
    arts = {a.path for a in client.list_artifacts(cb.run_id)}
    assert {"preview", "checkpoints", "config.json"} <= arts
    ckpts = {a.path for a in client.list_artifacts(cb.run_id, "checkpoints")}
    assert ckpts == {"checkpoints/step-00000002", "checkpoints/step-00000003"}
    assert (tmp_path / "artifacts").is_dir()


@pytest.mark.slow
@pytest.mark.xfail(run=False, reason="OPEN: in 400 steps (lr 3e-3) MLM falls 7.1->2.0 and bbox L1/GIoU "
                   "~10%, but ITC stays at ln(8) and ITM at 0.64; needs tuning (docs/training.md)")
@pytest.mark.timeout(600)
def test_debug_model_learns_every_loss(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", 48, 2, size=(96, 96), seed=3)
    cfg = small_config(tmp_path, shards, steps=160, ckpt_every=1000, deterministic=False)
    cfg.optim.lr = 1e-3
    cfg.optim.warmup_steps = 10
    cfg.data.randaugment = False
    losses = train(cfg).losses
    for key in ("itc", "itm", "mlm", "bbox_l1", "bbox_giou"):
        series = np.array([r[key] for r in losses])
        start, end = series[:20].mean(), series[-20:].mean()
        assert end < 0.85 * start, (key, start, end)
