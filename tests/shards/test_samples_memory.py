"""Out of DuckDB memory in the samples step: one ``ResourceLimit`` line naming the stage, the limit and
the spill folder (the CLI prints a ``BadInput`` as one line), never DuckDB's traceback; no build folder left."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_samples
from xvlm.errors import BadInput, ResourceLimit


def test_samples_out_of_memory_is_one_line(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out = tmp_path / "b"
    with pytest.raises(ResourceLimit) as e:
        build_samples(lake, raw, out, TEST_RECIPE, memory_limit="1KB")
    msg = str(e.value)
    assert isinstance(e.value, BadInput) and "\n" not in msg
    assert msg.startswith(f"samples of recipe {TEST_RECIPE.name!r}: DuckDB ran out of memory at memory_limit 1KB")
    assert str(out) in msg and "raise memory_limit" in msg
    assert not out.exists()


def test_cli_memory_limit_reaches_the_samples_step(planted: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``xvlm shards --memory-limit``: the value reaches the samples step (1KB runs out: one line, exit 2);
    a value that is not a size is one line before anything runs."""
    import shutil

    import flows.shards
    from tests.faults.test_output_faults import run_cli
    from xvlm.data.shards.build import plan_build

    lake, raw = planted
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    (copy / "lake.duckdb").write_bytes(b"")  # the CLI only checks that it exists
    recipe = tmp_path / "r.json"
    recipe.write_text(__import__("json").dumps(TEST_RECIPE.to_dict()))
    seen: list[str] = []

    def run_shards(lake_root: Path, raw_root: Path, out: Path, memory_limit: str, **_: object) -> dict:
        seen.append(memory_limit)  # the flow passes it to plan_build (flows/shards.py); here the library call
        return {"out": str(plan_build(lake_root, raw_root, out, TEST_RECIPE, memory_limit=memory_limit)[0])}

    monkeypatch.setattr(flows.shards, "run_shards", run_shards)
    code, out, err = run_cli(monkeypatch, capsys, "shards", str(copy), str(raw), str(tmp_path / "out"),
                             "--recipe", str(recipe), "--memory-limit", "1KB")
    assert (code, out, seen) == (2, "", ["1KB"])
    assert err.startswith(f"error: samples of recipe {TEST_RECIPE.name!r}: DuckDB ran out of memory at "
                          "memory_limit 1KB") and err.count("\n") == 1
    code, out, err = run_cli(monkeypatch, capsys, "shards", str(copy), str(raw), str(tmp_path / "out"),
                             "--recipe", str(recipe), "--memory-limit", "lots")
    assert (code, out, seen) == (2, "", ["1KB"])
    assert err == "error: --memory-limit lots: not a DuckDB size: 'lots' (e.g. 2GB, 512MiB)\n"
