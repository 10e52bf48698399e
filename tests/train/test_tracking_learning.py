"""MLflow callback contents and learning (fixed batch and shape-scene shards)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.shardgen import write_shards
from tests.train.test_train import small_config
from xvlm.data.loader import PretrainStream
from xvlm.models.objective import pretrain_losses
from xvlm.train import train
from xvlm.train.loop import build_train_model, to_device


def test_mlflow_callback_logs_run(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from xvlm.tracking import MLflowCallback

    shards = write_shards(tmp_path / "shards", 16, 2, size=(128, 96))
    # checkpoints at steps 1..5; keep_last 2 + milestones every 2 keep 2, 4, 5, locally and in MLflow
    cfg = small_config(tmp_path, shards, steps=5, ckpt_every=1, keep_every=2, tags={"recipe_hash": "abc123"})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = MLflowCallback(uri, "pretrain-test", artifact_location=str(tmp_path / "artifacts"),
                        system_metrics=False)
    train(cfg, [cb])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.batch_texts"] == "8" and run.data.params["steps"] == "5"
    assert run.data.tags["recipe_hash"] == "abc123" and len(run.data.tags["git_commit"]) >= 7
    for key in ("loss_itc", "loss_itm", "loss_mlm", "loss_bbox_l1", "loss_bbox_giou", "lr", "samples_per_s",
                "tokens_per_s"):
        hist = client.get_metric_history(cb.run_id, key)
        assert [m.step for m in hist] == [1, 2, 3, 4, 5], key
    arts = {a.path for a in client.list_artifacts(cb.run_id)}
    assert {"preview", "checkpoints", "config.json"} <= arts
    ckpts = {a.path for a in client.list_artifacts(cb.run_id, "checkpoints")}
    assert ckpts == {f"checkpoints/step-{s:08d}" for s in (2, 4, 5)}  # 1 and 3 deleted from the store too
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*.pt")) == [
        f"step-{s:08d}.pt" for s in (2, 4, 5)]
    assert (tmp_path / "artifacts").is_dir()
    assert sorted(p.name for p in (tmp_path / "artifacts").rglob("step-*.pt")) == [
        f"step-{s:08d}.pt" for s in (2, 4, 5)]  # the files themselves, not only the listing


class _FakeNVML:
    """Two GPUs behind the NVML calls MLflow's ``GPUMonitor`` makes (the boundary this test mocks)."""

    class Mem:
        used, total = 30 * 2**30, 80 * 2**30

    class Util:
        gpu = 87

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import pynvml

        for name, fn in {"nvmlInit": lambda: None, "nvmlDeviceGetCount": lambda: 2,
                         "nvmlDeviceGetHandleByIndex": lambda i: i,
                         "nvmlDeviceGetMemoryInfo": lambda h: self.Mem(),
                         "nvmlDeviceGetUtilizationRates": lambda h: self.Util(),
                         "nvmlDeviceGetPowerUsage": lambda h: 350_000,
                         "nvmlDeviceGetEnforcedPowerLimit": lambda h: 700_000}.items():
            monkeypatch.setattr(pynvml, name, fn)


def test_alternating_run_has_one_point_per_step_and_gpu_system_metrics(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22, item 5: region updates (which do not advance ``step``) are folded into the next step's point
    under ``region/``, so every metric has exactly one point per step; with NVML reporting two GPUs, MLflow's
    system metrics carry both GPUs' memory, utilisation and power."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from xvlm.tracking import MLflowCallback
    from xvlm.train import TrainCallback

    _FakeNVML().install(monkeypatch)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")

    class Slow(TrainCallback):  # keeps the run open for a few sampling intervals
        def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
            time.sleep(0.15)

    shards = write_shards(tmp_path / "shards", 16, 2, size=(128, 96))
    cfg = small_config(tmp_path, shards, steps=6, ckpt_every=100)
    cfg.data.mixing, cfg.data.region_steps = "alternating", 1.5
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = MLflowCallback(uri, "alternating", artifact_location=str(tmp_path / "artifacts"), log_checkpoints=False)
    result = train(cfg, [cb, Slow()])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    hist = {k: client.get_metric_history(cb.run_id, k) for k in client.get_run(cb.run_id).data.metrics}
    region_updates = [m.value for m in sorted(hist["region_updates"], key=lambda m: m.step)]
    assert result.updates - result.step == sum(region_updates) >= 6  # 1 or 2 region updates before each step
    for key in ("loss_itc", "loss", "lr", "grad_norm", "region_updates", "region/loss_bbox_giou", "region/loss"):
        assert sorted(m.step for m in hist[key]) == [1, 2, 3, 4, 5, 6], key
    # the logged region mean is the mean of the region updates' own losses (losses.jsonl has every update)
    updates = [json.loads(ln) for ln in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    for m in hist["region/loss_bbox_giou"]:
        # updates with step s - 1: the image-text update of step s - 1 (none for s = 1), then the region ones
        region = [u["bbox_giou"] for u in updates if u["step"] == m.step - 1][1 if m.step > 1 else 0:]
        assert m.value == pytest.approx(sum(region) / len(region), rel=1e-6), m.step
    for i in (0, 1):
        assert {m.value for m in hist[f"system/gpu_{i}_utilization_percentage"]} == {87.0}
        assert {m.value for m in hist[f"system/gpu_{i}_memory_usage_percentage"]} == {37.5}
        assert {m.value for m in hist[f"system/gpu_{i}_power_usage_percentage"]} == {50.0}


def test_pruning_keeps_the_newest_and_the_milestones() -> None:
    from xvlm.train.checkpoint import to_prune

    assert to_prune([5000 * i for i in range(1, 41)] + [200_640], 3, 50_000) == [
        s for s in range(5000, 190_001, 5000) if s % 50_000]
    assert to_prune([1, 2, 3], 0, 0) == [] and to_prune([1, 2, 3], 2, 0) == [1] and to_prune([3, 1, 2], 1, 1) == []


LN8 = math.log(8)  # ITC at chance for 8 texts: the value a collapsed model sits at


def test_debug_text_tower_distinguishes_texts_at_init() -> None:
    """Regression (ITC stuck at ln 8): with BERT's fixed std 0.02 at hidden 32 the text CLS was the same for
    every text (across-batch std 0.004), which made ITC collapse the vision tower. Base init stays 0.02."""
    from xvlm.models.config import get_config
    from xvlm.models.xvlm import XVLM, init_std

    assert init_std(get_config("xvlm-base").text) == 0.02
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug")).eval()
    assert model.text_proj.weight.std().item() == pytest.approx(0.02 * math.sqrt(768 / 32), rel=0.1)
    ids = torch.randint(1000, 30000, (8, 12))
    ids[:, 0] = 101
    with torch.no_grad():
        cls = model.encode_text(ids, torch.ones_like(ids))[:, 0]
    assert cls.std(0).mean().item() > 0.03  # was 0.004 with std 0.02


def test_fixed_batch_overfits_every_loss(tmp_path: Path, one_thread: None) -> None:
    """The minimal overfit check: one fixed batch of 8 texts on 5 images, model + losses without the loop.
    Every loss must fall far below its chance / prior value (ITC ln 8, ITM 0.64 = entropy of 1/3 positives);
    with the old init ITC was still 1.46 and ITM 0.59 after 120 steps. Measured (mean of the last 5 steps)
    on this batch: at step 120 ITC 0.35, ITM 0.35; at step 160 ITC 0.35, ITM 0.08, MLM 0.49 (from 10.4),
    bbox L1 0.013, GIoU 0.033. (Before the sample objects dropped their size attribute the batch held other
    texts and ITM was below 0.32 by step 120.)"""
    shards = write_shards(tmp_path / "shards", 8, 1, size=(96, 96), seed=3)
    cfg = small_config(tmp_path, shards)
    cfg.data.randaugment = False
    cfg.data.region_prob = 0.0
    torch.manual_seed(0)
    model = build_train_model(cfg)
    lb = next(iter(PretrainStream(cfg.data)))
    assert len(set(lb.texts)) == 8 and len(lb.keys) == 5
    batch = to_device(lb.batch, torch.device("cpu"), model.cfg.image_mean, model.cfg.image_std)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    history = []
    for _ in range(160):
        losses = pretrain_losses(model, batch, gen)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], {k: np.mean([h[k] for h in history[-5:]]) for k in history[0]}
    # ITC floor here is ~0.35: two texts of one image share a box (identical concept features)
    assert last["itc"] < 0.3 * LN8, last
    assert last["itm"] < 0.5 * 0.6365, last
    for key in ("mlm", "bbox_l1", "bbox_giou"):
        assert last[key] < 0.3 * first[key], (key, first[key], last[key])


ITM_PRIOR = 0.6365  # entropy of the 1/3-positive label mix: ITM's value when it ignores its inputs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_debug_model_learns_on_scene_shards(tmp_path: Path, one_thread: None) -> None:
    """The real loop (loader, AdamW groups, warmup, clipping) on 24 shape scenes, 800 steps, with the
    from-scratch settings the demo preset also uses: a reduced vision lr (x0.1 here, x0.3 in the demo's
    alternating batches; at x1 the random Swin collapses to constant features), the sin-cos absolute position embedding (else bbox has almost no token positions) and
    uniform ITM negatives (else ITM's "hard" negatives are mostly true pairs and it stays at its prior).

    Smoothed first vs last 20 steps, measured (1 thread) at seeds 42 / 1 / 2: ITC 2.28 -> 1.32 / 2.35 -> 1.30
    / 2.23 -> 1.33; ITM 0.69 -> 0.38 / 0.64 -> 0.43 / 0.64 -> 0.38; MLM 10.4 -> 2.1; bbox GIoU 0.99 -> 0.82 /
    1.11 -> 0.75 / 1.06 -> 0.87, bbox L1 0.75 -> 0.53 / 0.67 -> 0.47 / 0.62 -> 0.56. Margins: ITC below
    ln 8 - 0.35 and 0.8x its start; ITM 0.1 below its prior and 0.15 below its start; MLM below half; GIoU
    0.1 below its start (smallest measured fall 0.17); L1 0.03 below (smallest 0.055). With the reference's
    hard negatives ITM ends at 0.60 / 0.63 / 0.61 (docs/training.md, Known gaps).
    """
    shards = write_shards(tmp_path / "shards", 24, 2, size=(96, 96), seed=3)
    cfg = small_config(tmp_path, shards, steps=800, ckpt_every=10_000, deterministic=False)
    cfg.model_overrides["vision"]["pos_embed"] = "sincos"
    cfg.model_overrides["itm_negatives"] = "uniform"
    cfg.optim.lr = 1e-3
    cfg.optim.warmup_steps = 50
    cfg.optim.vision_lr_mult = 0.1
    cfg.data.randaugment = False
    losses = train(cfg).losses

    def smooth(key: str) -> tuple[float, float]:
        series = np.array([r[key] for r in losses])
        return float(series[:20].mean()), float(series[-20:].mean())

    itc0, itc1 = smooth("itc")
    assert itc1 < LN8 - 0.35 and itc1 < 0.8 * itc0, (itc0, itc1)
    itm0, itm1 = smooth("itm")
    assert itm1 < ITM_PRIOR - 0.1 and itm1 < itm0 - 0.15, (itm0, itm1)
    mlm0, mlm1 = smooth("mlm")
    assert mlm1 < 0.5 * mlm0, (mlm0, mlm1)
    giou0, giou1 = smooth("bbox_giou")
    assert giou1 < giou0 - 0.1, (giou0, giou1)
    l10, l11 = smooth("bbox_l1")
    assert l11 < l10 - 0.03, (l10, l11)
