"""The ``xvlm`` command line: help of every subcommand, and one clear line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _xvlm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("command", [[], ["sample-corpus"], ["demo"], ["lake"], ["ingest"], ["shards"],
                                     ["pretrain"], ["serve"], ["show"], ["ground"], ["score"],
                                     ["lake", "stats"], ["lake", "sql"]])
def test_help_of_every_subcommand(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_sample_corpus_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    first = _xvlm("sample-corpus", str(out), "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "QUIRKS.json").read_text())["seed"] == 3

    again = _xvlm("sample-corpus", str(out))
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr                  # one line, no traceback
    assert str(out) in lines[0] and "overwrite" in lines[0]

    verbose = _xvlm("--verbose", "sample-corpus", str(out))
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_ingest_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()  # the raw root exists, the source's files do not
    result = _xvlm("ingest", str(tmp_path / "raw"), str(tmp_path / "lake"), "--source", "vg")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "vg/image_data.json" in line and "not found" in line, result.stderr
    result = _xvlm("ingest", str(tmp_path / "nowhere"), str(tmp_path / "lake"), "--source", "vg")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: raw root not found (the folder holding the sources' files)"


def test_lake_stats_on_a_missing_lake_is_one_line(tmp_path: Path) -> None:
    result = _xvlm("lake", "stats", str(tmp_path / "no-lake"))
    assert result.returncode == 2
    assert "\n" not in result.stderr.strip() and "no-lake" in result.stderr


def test_lake_sql_and_stats_on_an_ingested_corpus(tmp_path: Path) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    assert _xvlm("sample-corpus", str(raw)).returncode == 0
    ingested = _xvlm("ingest", str(raw), str(lake), "--source", "vg")
    assert ingested.returncode == 0, ingested.stderr
    stats = _xvlm("lake", "stats", str(lake))
    assert stats.returncode == 0 and "regions" in stats.stdout and "quarantined" in stats.stdout
    ok = _xvlm("lake", "sql", str(lake), "select source, count(*) as n from regions group by all")
    assert ok.returncode == 0 and "vg" in ok.stdout, ok.stderr
    bad = _xvlm("lake", "sql", str(lake), "select nonsense from nowhere")
    assert bad.returncode == 2 and "query failed" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_shards_without_a_lake_is_one_line(tmp_path: Path) -> None:
    result = _xvlm("shards", str(tmp_path / "lake"), str(tmp_path / "raw"), str(tmp_path / "out"))
    assert result.returncode == 2
    assert "\n" not in result.stderr.strip() and "xvlm ingest" in result.stderr


def test_pretrain_with_an_unknown_preset_is_one_line(tmp_path: Path) -> None:
    result = _xvlm("pretrain", "--preset", "nope", "--work-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no such pre-training preset" in result.stderr and "demo" in result.stderr


def test_show_and_ground_name_the_bad_input(tmp_path: Path) -> None:
    show = _xvlm("show", "coco_1", "--build", str(tmp_path))
    assert show.returncode == 2 and "manifest.parquet" in show.stderr
    ground = _xvlm("ground", str(tmp_path / "nope.jpg"), "the red circle", "--checkpoint", str(tmp_path))
    assert ground.returncode == 2 and "nope.jpg" in ground.stderr


def test_pretrain_print_config_shows_the_resolved_tree() -> None:
    result = _xvlm("pretrain", "--preset", "demo", "--steps", "7", "--evaluation", "none", "--print-config")
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert tree["steps"] == 7 and tree["recipe"] == "demo" and tree["data"]["mixing"] == "alternating"
    assert tree["downstream"]["evaluations"] == [] and tree["downstream"]["finetune"]["max_steps"] == 200
    assert tree["optim"]["vision_lr_mult"] == 0.3 and tree["model_overrides"]["itm_negatives"] == "uniform"


def test_bad_input_exits_2_and_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Only ``xvlm.errors.BadInput`` becomes the one-line exit 2; a library bug (here a ValueError the library
    raises by mistake) propagates with its traceback, which Python turns into exit 1."""
    import xvlm.data.sample_corpus as sc
    from flows import cli
    from xvlm.errors import OutputExists

    def refuse(*args: object, **kwargs: object) -> None:
        raise OutputExists(f"{tmp_path}: is not empty; pass --overwrite")

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(sc, "write_sample_corpus", refuse)
    monkeypatch.setattr("sys.argv", ["xvlm", "sample-corpus", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2 and capsys.readouterr().err.strip() == f"error: {tmp_path}: is not empty; pass --overwrite"
    monkeypatch.setattr(sc, "write_sample_corpus", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        cli.main()
