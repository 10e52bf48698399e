"""The byte-range split of a top-level JSON array (xvlm/data/lake/ranges.py): where cuts land, and that
DuckDB rejects every range file whose cut is not a top-level separator (the soundness argument of the
module docstring, checked on DuckDB itself)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from xvlm.data.lake import ranges

_COLUMNS = {"id": "VARCHAR", "regions": "STRUCT(region_id VARCHAR, phrase VARCHAR)[]"}


def _doc(n: int, phrase: str = "a cat") -> list[dict]:
    return [{"regions": [{"region_id": 10 * i + j, "phrase": phrase} for j in range(2)], "id": i}
            for i in range(n)]


def _read(path: Path) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute("SELECT id, len(regions) FROM read_json($p, format = 'array', columns = $c)",
                           {"p": str(path), "c": _COLUMNS}).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("indent", [None, 2])
def test_ranges_cover_whole_elements_in_order(tmp_path: Path, indent: int | None) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(_doc(50), indent=indent))
    rs = ranges.element_ranges(p, 4)
    assert len(rs) == 4
    raw = p.read_bytes()
    got: list[dict] = []
    for k, (a, b) in enumerate(rs):
        assert raw[a:b].strip()[:1] == b"{" and raw[a:b].strip()[-1:] == b"}"
        ranges.write_range(p, a, b, tmp_path / f"{k}.json", "END")
        part = json.loads((tmp_path / f"{k}.json").read_text())
        assert part[-1] == {"id": "END", "regions": [{"region_id": "END"}]}
        got += part[:-1]
    assert got == _doc(50)
    # the ranges and the separators between them make up the whole interior of the array
    assert rs[0][0] == raw.index(b"[") + 1 and rs[-1][1] == raw.rindex(b"]")
    assert all(raw[b:a2].replace(b" ", b"").replace(b"\n", b"") == b"," for (_, b), (a2, _) in zip(rs, rs[1:], strict=False))


@pytest.mark.parametrize("kernel_copy", ["ok", "unsupported", "stops", "absent"])
def test_range_file_bytes_do_not_depend_on_the_copy_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        kernel_copy: str) -> None:
    """``os.copy_file_range`` copies the body when it works; where it fails (EXDEV, ENOSYS...), stops early
    (returns 0 before the end) or is missing, bounded reads copy the rest: the range file is the same bytes."""
    import errno
    import os

    p = tmp_path / "r.json"
    p.write_text(json.dumps(_doc(300)))
    raw = p.read_bytes()
    (a, b), _ = ranges.element_ranges(p, 2)
    monkeypatch.setattr(ranges, "_READ", 1000)  # several reads
    if kernel_copy in ("unsupported", "stops"):
        real, calls = os.copy_file_range, []

        def flaky(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
            calls.append(count)
            if len(calls) > 1:  # fails / stops after copying part of the body
                if kernel_copy == "stops":
                    return 0
                raise OSError(errno.EXDEV, "cross-device")
            return real(src, dst, min(count, 777), offset_src)

        monkeypatch.setattr(os, "copy_file_range", flaky)
    elif kernel_copy == "absent":
        monkeypatch.delattr(os, "copy_file_range")
    ranges.write_range(p, a, b, tmp_path / "0.json", "END")
    assert (tmp_path / "0.json").read_bytes() == b"[" + raw[a:b] + b"," + ranges.range_end("END") + b"]"


def test_a_separator_across_two_reads_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(_doc(40)))
    want = ranges.element_ranges(p, 3)
    monkeypatch.setattr(ranges, "_READ", ranges._OVERLAP + 7)  # every separator straddles some read
    assert ranges.element_ranges(p, 3) == want


def test_no_split_when_nothing_to_cut(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(_doc(1)))
    assert ranges.element_ranges(p, 2) == []  # one element: no separator
    p.write_text(json.dumps(_doc(5))[:-3])
    assert ranges.element_ranges(p, 2) == []  # not one array (truncated): parsed whole, which reports it
    p.write_text(json.dumps({"regions": []}))
    assert ranges.element_ranges(p, 2) == []


def test_duckdb_rejects_a_range_cut_anywhere_but_between_top_level_elements(tmp_path: Path) -> None:
    """A range cut inside a string and one between two regions (depth 2): DuckDB refuses both range
    files (so the split falls back); the cut between top-level elements parses."""
    doc = _doc(3)
    doc[1]["regions"][0]["phrase"] = "evil }, { text"
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    raw = p.read_bytes()
    in_string = raw.index(b"evil }") + len(b"evil ")
    depth_2 = raw.index(b'}, {"region_id"')
    true_cut = raw.index(b'}, {"regions": [{"region_id": 20')
    s = raw.index(b"[") + 1
    for end, ok in ((in_string + 1, False), (depth_2 + 1, False), (true_cut + 1, True)):
        dest = tmp_path / f"cut-{end}.json"
        ranges.write_range(p, s, end, dest, "END")
        if ok:
            assert _read(dest) == [("0", 2), ("1", 2), ("END", 1)]
        else:
            with pytest.raises(duckdb.InvalidInputException):
                _read(dest)


def test_the_separator_pattern_inside_a_phrase_is_never_a_cut(tmp_path: Path) -> None:
    """In the file a phrase's quotes are escaped (``{\\"regions\\"``), so SEP cannot match inside a string:
    every cut found is between two elements, even when every phrase holds the pattern."""
    doc = _doc(30, phrase='x }, {"regions": [{"region_id": 1}]}, {"regions": y')
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    rs = ranges.element_ranges(p, 8)
    assert len(rs) == 8
    got: list[dict] = []
    for k, (a, b) in enumerate(rs):
        ranges.write_range(p, a, b, tmp_path / f"{k}.json", "END")
        got += json.loads((tmp_path / f"{k}.json").read_text())[:-1]
    assert got == doc
