"""One sample corpus for the fault tests (session-scoped; treat as read-only, copy before changing it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xvlm.data.sample_corpus import write_sample_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("faults") / "raw", seed=0)
