"""The sample corpus for the retrieval / grounding tests, written once per test session (and xdist worker).

A helper rather than a conftest fixture so the files of tests/eval stay per-owner.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xvlm.data.sample_corpus import MANIFEST, write_sample_corpus


def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp() / "rg_sample_corpus"
    if not (root / MANIFEST).is_file():
        write_sample_corpus(root, seed=0, overwrite=True)
    return root
