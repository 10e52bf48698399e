"""xvlm.fsio: the one atomic file write (a failed writer leaves the old file and no temporary file)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from xvlm.fsio import atomic_path, temp_path, write_bytes, write_json, write_text


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_round_trip_bytes_text_json(tmp_path: Path) -> None:
    assert write_bytes(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    write_text(tmp_path / "sub" / "b.txt", "h\u00e9llo\n")  # parent folders are created
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "h\u00e9llo\n"
    doc = {"b": [1, 2], "a": str(tmp_path)}
    write_json(tmp_path / "c.json", doc)
    text = (tmp_path / "c.json").read_text()
    assert json.loads(text) == doc and text.index('"a"') < text.index('"b"')  # sort_keys by default
    write_json(tmp_path / "d.json", [{"y": 1, "x": 2}], indent=None, sort_keys=False)
    assert (tmp_path / "d.json").read_text() == json.dumps([{"y": 1, "x": 2}])  # json.dump's bytes
    write_json(tmp_path / "e.json", {"p": tmp_path})  # paths and the like through default=str
    assert json.loads((tmp_path / "e.json").read_text()) == {"p": str(tmp_path)}
    write_text(tmp_path / "b2.txt", "old")
    write_text(tmp_path / "b2.txt", "new", fsync=False)  # overwrite
    assert (tmp_path / "b2.txt").read_text() == "new"
    assert _debris(tmp_path) == [] and _debris(tmp_path / "sub") == []


def test_failed_writer_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_text(target, "old content")
    with pytest.raises(RuntimeError, match="writer died"), atomic_path(target) as tmp:
        tmp.write_text("half of the new cont")
        raise RuntimeError("writer died")
    assert target.read_text() == "old content"
    assert _debris(tmp_path) == []


def test_failed_writer_without_old_file_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(ValueError, match="bad"), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []


def test_writer_that_writes_nothing_raises_and_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    write_text(target, "kept")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # a writer that produced no file is a bug, not an empty target
    assert target.read_text() == "kept" and _debris(tmp_path) == []


def test_temp_path_is_a_hidden_unique_sibling(tmp_path: Path) -> None:
    target = tmp_path / "shard-00001.tar"
    a, b = temp_path(target), temp_path(target)
    assert a != b and a.parent == b.parent == tmp_path
    # the pattern the shard writer globs for a killed run's debris
    assert fnmatch.fnmatch(a.name, ".shard-00001.tar.*.tmp")
