"""``make demo`` end to end: the DAG runs on the sample corpus and its outputs are where it says (the run is
the session fixture ``demo_run``: the demo with ``--smoke``, every stage at a short training; the whole demo's
own lines are checked by the slow test at the end, on ``demo_full``, tests/conftest.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from xvlm.pipeline.config import SMOKE_OVERRIDES

STEPS = SMOKE_OVERRIDES["steps"]
CKPT = f"step-{STEPS:08d}.pt"


def test_demo_prints_where_outputs_are(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    assert "Demo finished" in stdout
    for line in ("lake.duckdb", "mlflow ui", "prefect server start"):
        assert line in stdout
    assert (out / "raw" / "QUIRKS.json").is_file()
    assert (out / "lake" / "lake.duckdb").is_file()
    assert (out / ".prefect").is_dir()           # Prefect's local state stayed inside the output
    every = SMOKE_OVERRIDES["ckpt_every"]
    assert sorted(p.name for p in (out / "train" / "checkpoints").glob("*.pt")) == [
        f"step-{STEPS - every:08d}.pt", CKPT]                                # keep_last 2 pruned the rest
    assert list((out / "shards").glob("demo-*/shards/demo-000000.tar"))
    assert f"Pre-training (debug model): {STEPS} steps" in stdout


def test_demo_logged_ingest_and_pretraining_to_mlflow(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    con = sqlite3.connect(out / "mlflow.db")
    try:
        runs = dict(con.execute("select r.run_uuid, r.name from runs r join experiments e on r.experiment_id "
                                "= e.experiment_id where e.name = 'pretrain-demo' and r.status = 'FINISHED'"))
        metrics = {(run, key): (value, step) for run, key, value, step in con.execute(
            "select run_uuid, key, value, step from latest_metrics")}
        tags = {(run, key): value for run, key, value in con.execute("select run_uuid, key, value from tags")}
    finally:
        con.close()
    ingest = next(r for r, name in runs.items() if name == "ingest")
    assert metrics[(ingest, "vg.regions.loaded")][0] > 0
    train = next(r for r, name in runs.items() if name not in ("ingest", "shards"))
    assert metrics[(train, "loss_itc")][1] == STEPS           # points up to the last (image-text) step
    assert tags[(train, "ingest_run_id")] == ingest           # the training run names its data
    assert len(tags[(train, "manifest_hash")]) == 64
    assert runs[tags[(train, "shards_run_id")]] == "shards"


def test_load_demo_run_folder(demo_run: tuple[Path, str]) -> None:
    """``xvlm.inference.load`` on the run folder: ``checkpoints/latest``, the weights as saved, eval mode."""
    import torch

    from xvlm.inference import load

    run = demo_run[0] / "train"
    p = load(run)  # run folder -> checkpoints/latest
    assert p.step == STEPS and p.source.endswith(CKPT) and p.kind == "ours"
    assert load(run / "checkpoints").source == p.source
    state = torch.load(p.source, map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(p.model.state_dict()[k], v) for k, v in state.items())
    assert not p.model.training


def test_demo_logged_the_data_report(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    con = sqlite3.connect(out / "mlflow.db")
    try:
        (run,) = con.execute("select run_uuid from runs where name = 'shards'").fetchone()
        written = con.execute("select value from latest_metrics where run_uuid = ? and key = 'samples_written'",
                              (run,)).fetchone()[0]
    finally:
        con.close()
    assert written > 0
    assert (out / "mlartifacts" / run / "artifacts" / "report" / "data_report.png").is_file()


def test_show_and_ground_on_the_demo_outputs(demo_run: tuple[Path, str], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out, _ = demo_run
    build = next((out / "shards").glob("demo-*"))
    key = pq.read_table(build / "manifest.parquet", columns=["key"]).column("key")[0].as_py()
    show = subprocess.run([sys.executable, "-m", "flows.cli", "show", key, "--build", str(build),
                           "--out", str(tmp_path / "s.png")], capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr
    assert (tmp_path / "s.png").stat().st_size > 1000
    image = next((out / "raw" / "coco" / "train2017").glob("*.jpg"))
    ground = subprocess.run([sys.executable, "-m", "flows.cli", "ground", str(image), "the red circle",
                             "--checkpoint", str(out / "train"), "--out", str(tmp_path / "g.png")],
                            capture_output=True, text=True, timeout=120)
    assert ground.returncode == 0, ground.stderr
    assert ground.stdout.startswith("box x=") and (tmp_path / "g.png").is_file()


def test_demo_prints_evaluation_numbers_of_runs_linked_to_pretraining(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    con = sqlite3.connect(out / "mlflow.db")
    try:
        (pre,) = con.execute("select r.run_uuid from runs r join experiments e using (experiment_id) where "
                             "e.name = 'pretrain-demo' and r.name not in ('ingest', 'shards')").fetchone()
        evals = dict(con.execute(
            "select r.name, r.run_uuid from runs r join experiments e using (experiment_id) "
            "join tags t on t.run_uuid = r.run_uuid and t.key = 'pretrain_run_id' "
            "where e.name = 'xvlm-eval' and r.status = 'FINISHED' and t.value = ?", (pre,)))
    finally:
        con.close()
    assert set(evals) == {"evaluate-retrieval-coco", "evaluate-grounding", "finetune-retrieval-coco",
                          "finetune-grounding"}
    assert f"Evaluation of {CKPT} (pre-training run {pre})" in stdout
    for name in ("finetune-retrieval-coco", "finetune-grounding", "evaluate-grounding"):
        assert f"[mlflow run {evals[name]}]" in stdout                  # every number names its run
    assert "retrieval (fine-tuned, test, ITM re-ranked): txt_r1 " in stdout
    assert "grounding (fine-tuned, Acc@IoU>=0.5):" in stdout and "testA/acc_iou50" in stdout
    assert list((out / "eval").glob("*/result.json"))


@pytest.mark.slow
def test_the_whole_demo_trains_600_steps_and_evaluates(demo_full: tuple[Path, str]) -> None:
    """The whole ``make demo`` (not the smoke run): its own step count and the lines README shows."""
    out, stdout = demo_full
    assert (out / "train" / "checkpoints" / "step-00000600.pt").is_file()
    assert "Pre-training (debug model): 600 steps" in stdout
    assert "Evaluation of step-00000600.pt (pre-training run " in stdout
    assert "retrieval (fine-tuned, test, ITM re-ranked): txt_r1 " in stdout
