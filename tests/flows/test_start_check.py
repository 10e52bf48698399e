"""The start check of the 4m / 16m presets: named starting weights, ``--check``, the flow's first step."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.flows.start_weights import MINILM_SHAPES, weights_root
from xvlm.errors import BadInput
from xvlm.pipeline.config import resolve_run
from xvlm.pipeline.preflight import check_run, check_start_rule


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weights_root(tmp_path_factory.mktemp("weights"))


def test_16m_check_without_weights_names_both_files_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("XVLM_WEIGHTS", str(empty))
    monkeypatch.setattr(sys, "argv", ["xvlm", "pretrain", "--preset", "16m", "--work-dir", str(tmp_path / "work"),
                                      "--check"])
    with pytest.raises(SystemExit) as exc:  # the console entry point, in-process
        main()
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"init_bert: {empty / 'bert-base-uncased'} not found" in line
    assert f"init_swin: {empty / 'swin_base_patch4_window7_224_22k.pth'} not found" in line
    assert "huggingface-cli download google-bert/bert-base-uncased" in line and "SwinTransformer/storage" in line
    assert not (tmp_path / "work").exists()  # nothing ran


def test_16m_check_with_a_weights_root_passes_and_prints_the_load_reports(root: Path, tmp_path: Path) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["pretrain", "--preset", "16m", "--work-dir", str(tmp_path / "work"),
                                      "--check", "--weights-root", str(root),
                                      "--overrides", json.dumps(MINILM_SHAPES)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"start: {root / 'bert-base-uncased'}: loaded " in out and "unmapped 0" in out
    assert f"start: {root / 'swin_base_patch4_window7_224_22k.pth'}: loaded " in out
    assert "start check passed: preset 16m can start" in out and "resume: no checkpoint yet" in out
    assert not (tmp_path / "work").exists()


def test_the_reports_leave_only_the_documented_keys_new(root: Path, tmp_path: Path) -> None:
    run = resolve_run("16m", MINILM_SHAPES, weights_root=root)
    assert run.init_bert == str(root / "bert-base-uncased") and not run.from_scratch
    bert, swin = check_run(run, tmp_path).reports
    assert {k.split(".")[0] for k in bert.new} == {"cross_encoder"} and all(".crossattention." in k for k in bert.new)
    assert swin.new == [] and bert.balanced() and swin.balanced() and bert.unmapped == swin.unmapped == []
    assert {"head.weight", "head.bias"} <= set(swin.dropped) and len(bert.sha256) == len(swin.sha256) == 64


def test_a_bert_folder_without_the_mlm_head_is_refused(tmp_path: Path) -> None:
    root = weights_root(tmp_path / "w", with_mlm_head=False)
    with pytest.raises(BadInput, match=r"init_bert .*bert-base-uncased: not a usable start: .*mlm_head\.predictions"):
        check_run(resolve_run("16m", MINILM_SHAPES, weights_root=root))


def test_a_random_start_must_be_asked_for() -> None:
    run = resolve_run("16m", {"init_bert": None, "init_swin": None})
    with pytest.raises(BadInput, match="init_bert and init_swin not set.*from_scratch: true"):
        check_start_rule(run)
    check_start_rule(resolve_run("16m", {"init_bert": None, "init_swin": None, "from_scratch": True}))
    demo = resolve_run("demo")
    assert demo.from_scratch and demo.init_bert is None and demo.init_swin is None
    check_start_rule(demo)
    with pytest.raises(BadInput, match="from_scratch: true but both"):
        check_start_rule(resolve_run("16m", {"from_scratch": True}, weights_root="/w"))


def test_the_check_reads_the_whole_config_before_any_stage(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="image_res 224 != model"):
        check_run(resolve_run("demo", {"data": {"image_res": 224}}))
    with pytest.raises(BadInput, match="recipe"):
        check_run(resolve_run("demo", {"recipe": "no-such-recipe"}))


def test_the_flow_checks_first_and_check_runs_nothing_else(root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.pretrain as flow

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stage ran before the start check")

    for stage in ("sample_corpus", "ingest", "shards", "train"):
        monkeypatch.setattr(flow, stage, never)
    with pytest.raises(BadInput, match="init_bert: .*not found"):
        flow.pretrain.fn(preset="16m", work_dir=str(tmp_path / "a"), raw_root=str(tmp_path),
                         weights_root=str(tmp_path / "empty"))
    done = flow.pretrain.fn(preset="16m", work_dir=str(tmp_path / "b"), raw_root=str(tmp_path),
                            weights_root=str(root), overrides=MINILM_SHAPES, check=True)
    assert [r["source"] for r in done["check"]["reports"]] == [str(root / "bert-base-uncased"),
                                                               str(root / "swin_base_patch4_window7_224_22k.pth")]


def test_the_4m_and_16m_deployments_pass_the_weights_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.deployments import deployments

    monkeypatch.setenv("XVLM_WEIGHTS", "/models/xvlm")
    monkeypatch.setenv("XVLM_NNODES", "3")
    monkeypatch.setenv("XVLM_RDZV_ENDPOINT", "head.cluster:29400")
    by_name = {d.name: d for d in deployments(tmp_path)}
    for name in ("pretrain-4m", "pretrain-16m"):
        params = by_name[name].parameters
        assert params["weights_root"] == "/models/xvlm"
        assert (params["nnodes"], params["node_rank"], params["rdzv_endpoint"]) == (3, 0, "head.cluster:29400")
    # settable per run: `prefect deployment run 'pretrain/pretrain-16m' -p shards_memory_limit=16GB` (docs/scale.md)
    assert {"check", "weights_root", "shards_memory_limit"} <= set(
        by_name["pretrain-16m"]._parameter_openapi_schema.properties)


def test_from_scratch_is_a_run_tag() -> None:
    from xvlm.train.loop import run_tags

    assert run_tags(resolve_run("demo").train_config())["from_scratch"] == "true"
    assert run_tags(resolve_run("16m", weights_root="/w").train_config())["from_scratch"] == "false"


def test_pretrain_tracks_every_stage_in_the_work_dirs_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MLFLOW_TRACKING_URI, ``xvlm pretrain`` logs every stage's run to WORK/mlflow.db (before, the
    training run was not tracked at all and the data stages fell back to MLflow's ./mlflow.db)."""
    import flows.pretrain
    from flows.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-below")  # restored (to unset) after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    seen: dict[str, str | None] = {}

    def flow(**kwargs):
        seen["uri"] = os.environ.get("MLFLOW_TRACKING_URI")
        return {"train": {"checkpoint": "ckpt.pt", "step": 3}, "evaluation": None,
                "mlflow_runs": {"ingest": "i1", "shards": "s1", "pretrain": "p1", "evaluation": {}}}

    monkeypatch.setattr(flows.pretrain, "pretrain", flow)
    result = CliRunner().invoke(app, ["pretrain", "--preset", "demo", "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert seen["uri"] == f"sqlite:///{(tmp_path / 'w').resolve() / 'mlflow.db'}"
    assert f"MLflow: {seen['uri']} (runs: ingest i1, shards s1, pretrain p1)" in result.output
