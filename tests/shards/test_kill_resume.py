"""SIGKILL the shard build (a subprocess) at several points, resume, compare bytes with a clean build.

The kill points are hooks in the code (``XVLM_SHARDS_CRASH_AT=<shard>:<point>``: the process SIGKILLs
itself there), so each test kills at a known place: before the plan file, in the middle of a tar,
between the tar rename and the stats file, right after a stats file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_shards
from xvlm.data.shards.writer import CRASH_ENV

ROOT = Path(__file__).resolve().parents[2]


def _run(lake: Path, raw: Path, out: Path, recipe: Path, crash: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run([sys.executable, "-m", "xvlm.data.shards", str(lake), str(raw), str(out),
                           "--recipe", str(recipe)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _tree(build: Path) -> dict[str, bytes]:
    keep = lambda p: p.is_file() and not p.name.startswith(".") and p.name not in ("audit.json",)  # noqa: E731
    return {str(p.relative_to(build)): p.read_bytes() for p in sorted(build.rglob("*")) if keep(p)}


@pytest.fixture(scope="module")
def reference(planted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake, raw = planted
    return Path(build_shards(lake, raw, tmp_path_factory.mktemp("ref"), TEST_RECIPE)["out"])


@pytest.mark.parametrize("points", [["plan:before_plan"], ["0:mid_tar", "0:after_stats", "1:before_stats"]])
def test_kill_and_resume_is_byte_identical(planted: tuple[Path, Path], reference: Path, tmp_path: Path,
                                           points: list[str]) -> None:
    lake, raw = planted
    recipe = tmp_path / "t.json"
    recipe.write_text(json.dumps(TEST_RECIPE.to_dict()))
    out = tmp_path / "out"
    for point in points:
        r = _run(lake, raw, out, recipe, point)
        assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stderr[-2000:])
    build = out / reference.name
    if points[0].startswith("0:"):
        # killed after the first stats file: exactly shard 0 counts as done
        assert sorted(p.name for p in (build / "shards").glob("*.stats.json")) == ["t-000000.stats.json"]
        assert (build / "shards" / "t-000001.tar").is_file()  # renamed, but its stats file never came
    r = _run(lake, raw, out, recipe, None)
    assert r.returncode == 0, r.stderr[-2000:]
    got, want = _tree(build), _tree(reference)
    assert got.keys() == want.keys()
    assert [k for k in got if got[k] != want[k]] == []
    assert not [p for p in build.rglob(".*.tmp")]  # a resumed shard removes its killed run's temp files
