"""``xvlm evaluate``: help, one clear line on a missing checkpoint, and one real zero-shot run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from tests.eval.rg_corpus import sample_corpus


def _xvlm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          timeout=240, env=env)


def test_evaluate_help_lists_the_tasks() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0, result.output
    assert "zero-shot-retrieval" in result.output and "--pretrain-run-id" in result.output


def test_evaluate_names_the_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    result = _xvlm("evaluate", str(missing), str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "no such checkpoint" in lines[0], result.stderr
    bad = _xvlm("evaluate", str(missing), str(tmp_path), "-t", "zero-shot-vqa")
    assert bad.returncode == 2 and "zero-shot-vqa" in bad.stderr


def test_evaluate_zero_shot_grounding_logs_a_linked_run(tmp_path_factory: pytest.TempPathFactory,
                                                         tmp_path: Path) -> None:
    raw = sample_corpus(tmp_path_factory)
    torch.manual_seed(0)
    from xvlm.models.xvlm import build_model

    ckpt = tmp_path / "step-00000003.pt"   # our pre-training checkpoint layout
    torch.save({"model": build_model("xvlm-debug").state_dict(), "config": {"model": "xvlm-debug"},
                "train_state": {"step": 3}}, ckpt)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    result = _xvlm("evaluate", str(ckpt), str(raw), "--out", str(out), "-t", "zero-shot-grounding",
                   "--pretrain-run-id", "pre123", env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("grounding (zero-shot")]
    run_id = line.split("[mlflow run ")[1].rstrip("]")
    con = sqlite3.connect(out / "mlflow.db")       # no MLFLOW_TRACKING_URI: the runs go under --out
    try:
        tags = dict(con.execute("select key, value from tags where run_uuid = ?", (run_id,)))
        acc = dict(con.execute("select key, value from latest_metrics where run_uuid = ?", (run_id,)))
    finally:
        con.close()
    assert tags["pretrain_run_id"] == "pre123" and tags["checkpoint_step"] == "3"
    assert tags["checkpoint"] == str(ckpt)
    assert f"val/acc_iou50 {acc['val/acc_iou50']:.1f}" in line     # the printed number is the logged one
