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
