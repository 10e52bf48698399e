"""The fused VG-regions pass (xvlm/data/lake/fused.py) against the generic candidate -> final path:
identical lake tables and stats on the sample corpus, on planted box-rule edge cases, and through the
fallback taken when a region id could repeat."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xvlm.data.lake import TABLES, IngestConfig, LakeInputError, ingest_source
from xvlm.data.lake.sqlrun import SqlRunner
from xvlm.data.sample_corpus import write_sample_corpus

from .lake_fixtures import copy_corpus

# the package re-exports a function named `ingest`, which hides the module of that name
lake_ingest = importlib.import_module("xvlm.data.lake.ingest")
fused_mod = importlib.import_module("xvlm.data.lake.fused")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("fused") / "raw", seed=0)


def _tables(lake: Path) -> dict[str, list[tuple]]:
    """Every VG table's rows (sorted) plus its column names and DuckDB types (``<table>:schema``)."""
    con = duckdb.connect()
    try:
        out: dict[str, list[tuple]] = {}
        for t in TABLES:
            p = {"p": str(lake / t / "source=vg" / "part-0.parquet")}
            out[t] = sorted(con.execute("SELECT * FROM read_parquet($p)", p).fetchall(), key=repr)
            out[f"{t}:schema"] = con.execute("SELECT column_name, column_type FROM (DESCRIBE "
                                             "SELECT * FROM read_parquet($p))", p).fetchall()
        return out
    finally:
        con.close()


def _both(raw: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, **cfg: Any) -> tuple[dict, dict, list[Any]]:
    """Ingest VG twice (fused, generic); returns (fused tables + stats, generic ..., fused results)."""
    seen: list[Any] = []
    real = lake_ingest.fused_vg_regions

    def spy(*a: Any, **k: Any) -> Any:
        seen.append(real(*a, **k))
        return seen[-1]

    monkeypatch.setattr(lake_ingest, "fused_vg_regions", spy)
    out: list[dict] = []
    for fused in (True, False):
        lake = tmp / f"lake-{fused}"
        stats = ingest_source(IngestConfig(raw_root=raw, out=lake, fused_regions=fused, **cfg), "vg")
        out.append({"tables": _tables(lake), "entities": stats["entities"]})
    return out[0], out[1], seen


def test_fused_equals_generic_on_the_sample_corpus(corpus: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fused, generic, seen = _both(corpus, tmp_path, monkeypatch)
    assert len(seen) == 1 and seen[0] is not None  # the fused path was taken, not the fallback
    assert fused == generic
    assert generic["tables"]["regions"] and generic["entities"]["regions"]["quarantined"]


def _plant(raw: Path, extra: list[dict], dup: bool = False) -> None:
    """Append planted regions to the first images of the sample region file."""
    p = raw / "vg/region_descriptions.json"
    data = json.loads(p.read_text())
    for i, r in enumerate(extra):
        data[i % 3]["regions"].append(r)
    if dup:
        data[4]["regions"].append(dict(data[0]["regions"][0]))
    data.append({"id": "x12", "regions": [{"region_id": 999_001, "x": 1, "y": 1, "width": 2, "height": 2,
                                            "phrase": "bad image id"}]})
    data.append({"id": 987_654_321, "regions": [{"region_id": 999_002, "x": 1, "y": 1, "width": 2,
                                                 "height": 2, "phrase": "unknown image"}]})
    p.write_text(json.dumps(data))


_EDGE = [
    {"region_id": 990_001, "x": "left", "y": 1, "width": 2, "height": 2, "phrase": "string x"},
    {"region_id": 990_002, "x": "nan", "y": 1, "width": 2, "height": 2, "phrase": "nan x"},
    {"region_id": 990_003, "x": 1, "y": 1, "width": 0, "height": 2, "phrase": "zero width"},
    {"region_id": 990_004, "x": -3, "y": 1, "width": 4, "height": 2, "phrase": "clipped a little"},
    {"region_id": 990_005, "x": 1, "y": -904, "width": 4, "height": 20, "phrase": "VG's y + h < 0"},
    {"region_id": 990_006, "x": 1, "y": 1, "width": 4, "height": 2, "phrase": " ... ,!? "},
    {"region_id": 990_007, "x": 1, "y": 1, "width": 4, "height": 2},
    {"id": 990_008, "x": "2.5", "y": "1e0", "width": 4, "height": 2, "phrase": "old id key, text numbers"},
    {"region_id": 990_009, "x": 1, "y": 1, "width": 4, "height": 2, "phrase": "tab\there"},
    {"region_id": 990_010, "x": float("nan"), "y": 1, "width": 4, "height": 2, "phrase": "a JSON NaN"},
]


@pytest.mark.parametrize("batch_rows", [1 << 17, 3])
def test_fused_equals_generic_on_planted_edge_cases(corpus: Path, tmp_path: Path, batch_rows: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """batch_rows=3: the stream is split over many batches, quarantined rows land in several of them."""
    monkeypatch.setattr(fused_mod, "_BATCH_ROWS", batch_rows)
    raw = copy_corpus(corpus, tmp_path / "raw")
    _plant(raw, _EDGE)
    fused, generic, seen = _both(raw, tmp_path, monkeypatch)
    assert seen[0] is not None
    if batch_rows == 3:  # the regions file has one row group per streamed batch: the split ran many times
        groups = pq.ParquetFile(tmp_path / "lake-True" / "regions" / "source=vg" / "part-0.parquet").num_row_groups
        assert groups > 10
    assert fused == generic
    q = generic["entities"]["regions"]["quarantined"]
    # strict JSON types: "left", "nan", "2.5" are strings (never cast), NaN is a non-finite number
    assert q["wrong_type:x=string"] == 3 and q["wrong_type:x=non-finite"] == 1
    assert q["zero_size_box"] >= 1 and q["empty_text"] >= 2
    assert q["wrong_type:id=string"] == 1 and q["unknown_image"] == 1 and q["box_outside_image"] >= 1


@pytest.mark.parametrize("planted", ["duplicate", "non_integer_id", "same_number_two_spellings"])
def test_possible_duplicate_ids_fall_back_to_the_generic_path(corpus: Path, tmp_path: Path, planted: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    raw = copy_corpus(corpus, tmp_path / "raw")
    extra = {"duplicate": [],
             "non_integer_id": [{"region_id": "r-1", "x": 1, "y": 1, "width": 2, "height": 2, "phrase": "a"}],
             "same_number_two_spellings": [
                 {"region_id": "990101", "x": 1, "y": 1, "width": 2, "height": 2, "phrase": "a"},
                 {"region_id": "0990101", "x": 1, "y": 1, "width": 2, "height": 2, "phrase": "b"}]}[planted]
    _plant(raw, extra, dup=planted == "duplicate")
    fused, generic, seen = _both(raw, tmp_path, monkeypatch)
    assert seen == [None]  # the fused pass declined; the generic path ran
    assert fused == generic
    if planted == "duplicate":
        assert generic["entities"]["regions"]["quarantined"]["duplicate_id"] == 1
    assert not list((tmp_path / "lake-True" / "_tmp").glob("stage-*"))


def test_a_parse_error_is_an_error_of_that_file_only(corpus: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A region file cut inside its last records (6,000 more images, small batches): the parse error
    surfaces through the parse thread as an error naming the file; no region row and no staging left,
    the source's other files are loaded. (Whether DuckDB emits some batches before it reports the error depends on its
    read-ahead; the mid-stream case is pinned down with a planted error below.)"""
    monkeypatch.setattr(fused_mod, "_BATCH_ROWS", 512)
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    data = json.loads(p.read_text())
    data += [{"id": 10_000_000 + i, "regions": [{"region_id": 50_000_000 + i, "x": 1, "y": 1, "width": 2,
                                                 "height": 2, "phrase": "p"}]} for i in range(6000)]
    text = json.dumps(data)
    p.write_text(text[: len(text) - 100])
    lake = tmp_path / "lake"
    # a file-level error of the region file only: VG's other files load, no region row is kept
    stats = ingest_source(IngestConfig(raw_root=raw, out=lake), "vg")
    assert [e["file"] for e in stats["errors"]] == ["vg/region_descriptions.json"]
    assert stats["errors"][0]["error"].startswith("unusable input")
    assert stats["entities"]["regions"]["rows_in"] == 0 and stats["entities"]["images"]["loaded"] > 0
    assert pq.read_metadata(lake / "regions" / "source=vg" / "part-0.parquet").num_rows == 0
    assert not list((lake / "_tmp").iterdir())


_STREAM_SCHEMA = pa.schema([("image_key", pa.string()), ("source", pa.string()), ("region_id", pa.int64()),
                            ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                            ("phrase", pa.string()), ("clipped", pa.bool_()), ("box_id", pa.string()),
                            ("reason", pa.string())])


def _batch(ids: list[int], reasons: list[str | None]) -> pa.RecordBatch:
    n = len(ids)
    return pa.record_batch([pa.array([f"vg_{i}" for i in ids]), pa.array(["vg"] * n), pa.array(ids, pa.int64()),
                            *[pa.array([1.0] * n)] * 4, pa.array(["p"] * n), pa.array([False] * n),
                            pa.array([str(i) for i in ids]), pa.array(reasons, pa.string())],
                           schema=_STREAM_SCHEMA)


def test_split_stream_counts_splits_and_writes(tmp_path: Path) -> None:
    q: list[pa.RecordBatch] = []
    out = tmp_path / "r.parquet"
    counts = fused_mod._split_stream(_STREAM_SCHEMA, iter([_batch([1, 2, 3], [None, "zero_size_box", None]),
                                                           _batch([4, 5], [None, None])]), out, q)
    assert (counts.rows_in, counts.n_ids, counts.n_int_ids, counts.ids_increasing) == (5, 5, 5, True)
    assert pq.read_table(out).column("region_id").to_pylist() == [1, 3, 4, 5]
    assert pq.read_table(out).column_names == list(fused_mod.REGION_COLUMNS)
    assert [b.column("region_id").to_pylist() for b in q] == [[2]]


def test_split_stream_error_mid_stream_reaches_the_caller(tmp_path: Path) -> None:
    """The parse thread fails after two batches: the caller gets that very error (not a hang)."""
    def failing() -> Any:
        yield _batch([1], [None])
        yield _batch([2], [None])
        raise LakeInputError("vg/region_descriptions.json", "unusable input (planted)")

    with pytest.raises(LakeInputError, match="planted"):
        fused_mod._split_stream(_STREAM_SCHEMA, failing(), tmp_path / "r.parquet", [])


def test_split_stream_writer_failure_stops_the_parse_thread(tmp_path: Path) -> None:
    """The consumer fails (a batch the writer rejects): the producer is stopped instead of blocking on a
    full queue forever, and the error reaches the caller."""
    pulled: list[int] = []

    def endless() -> Any:
        i = 0
        while True:
            i += 1
            pulled.append(i)
            yield _batch([i], [None]) if i < 3 else pa.record_batch([pa.array([i])], names=["other"])

    with pytest.raises(KeyError):
        fused_mod._split_stream(_STREAM_SCHEMA, endless(), tmp_path / "r.parquet", [])
    assert len(pulled) <= 3 + fused_mod._AHEAD + 1  # stopped, not drained forever


@pytest.mark.parametrize("batches,increasing", [
    ([[1, 2, 3], [4, None, 5]], True),
    ([[None, None], [1], [], [2]], True),
    ([[1, 2], [2, 3]], False),      # equal across a batch boundary
    ([[1, 3, 2]], False),           # out of order inside a batch
    ([[5], [None], [5]], False),    # equal, with only NULLs between
])
def test_ids_increasing_is_tracked_across_batches(batches: list[list[int | None]], increasing: bool) -> None:
    s = fused_mod._Split()
    for b in batches:
        s.see_ids(pa.array(b, pa.int64()))
    assert s.ids_increasing is increasing


def _renumbered_regions(p: Path) -> list[dict]:
    """The region file's images with region ids renumbered 1, 2, 3, ... in file order (VG's order)."""
    data = json.loads(p.read_text())
    k = 0
    for img in data:
        for r in img["regions"]:
            k += 1
            r.pop("id", None)
            r["region_id"] = k
    return data


def _query_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the SQL files run through ``SqlRunner.query``, in order."""
    queries: list[str] = []
    real = SqlRunner.query

    def spy(self: SqlRunner, name: str, **params: Any) -> Any:
        queries.append(name)
        return real(self, name, **params)

    monkeypatch.setattr(SqlRunner, "query", spy)
    return queries


@pytest.mark.parametrize("dup", [False, True])
def test_increasing_ids_skip_the_id_lookup(corpus: Path, tmp_path: Path, dup: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Region ids renumbered 1, 2, 3, ... in file order (the bench's and VG's order): the fused pass
    trusts the stream and runs no fused_ids_check; an adjacent repeated id still falls back."""
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    data = _renumbered_regions(p)
    if dup:
        data[-1]["regions"].append(dict(data[-1]["regions"][-1]))
    p.write_text(json.dumps(data))
    queries = _query_spy(monkeypatch)
    fused, generic, seen = _both(raw, tmp_path, monkeypatch)
    assert fused == generic
    assert (seen == [None]) is dup
    assert ("fused_ids_check" in queries) is dup
    if dup:
        assert generic["entities"]["regions"]["quarantined"]["duplicate_id"] == 1


def _split_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Split every region file (no size floor); record each range parse's outcome ("ok" / "fallback")."""
    monkeypatch.setattr(fused_mod, "_MIN_SPLIT_BYTES", 0)
    outcomes: list[str] = []
    real = fused_mod._parse_ranges

    def spy(*a: Any, **k: Any) -> Any:
        try:
            res = real(*a, **k)
        except LakeInputError:
            outcomes.append("fallback")
            raise
        outcomes.append("ok")
        return res

    monkeypatch.setattr(fused_mod, "_parse_ranges", spy)
    return outcomes


@pytest.mark.parametrize("threads", [2, 5])
def test_range_parses_equal_generic(corpus: Path, tmp_path: Path, threads: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The file parsed as 2 / 5 byte ranges at once: identical tables (quarantine locators included: the
    planted bad rows sit in the last range, the sample's own in the others) and stats."""
    outcomes = _split_spy(monkeypatch)
    monkeypatch.setattr(fused_mod, "_BATCH_ROWS", 7)
    raw = copy_corpus(corpus, tmp_path / "raw")
    _plant(raw, _EDGE)
    fused, generic, seen = _both(raw, tmp_path, monkeypatch, threads=threads)
    assert outcomes == ["ok"] and seen[0] is not None
    assert fused == generic
    locs = [r for r in generic["tables"]["quarantine"] if "regions[" in repr(r)]
    assert any("[40].regions[0]" in repr(r) for r in locs)  # the planted bad image id, element 40


def test_range_files_that_cannot_be_written_fall_back_to_one_parse(corpus: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the range files (ENOSPC while copying): the file is parsed whole, same tables."""
    import errno

    outcomes = _split_spy(monkeypatch)

    def full_disk(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fused_mod, "write_range", full_disk)
    raw = copy_corpus(corpus, tmp_path / "raw")
    fused, generic, seen = _both(raw, tmp_path, monkeypatch, threads=2)
    assert outcomes == ["fallback"] and seen[0] is not None
    assert fused == generic


def test_phrases_holding_the_separator_split_soundly(corpus: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every phrase holds ``}, {"regions": [`` (escaped in the file): the cuts still fall between images
    and the tables equal the generic path's."""
    outcomes = _split_spy(monkeypatch)
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    data = json.loads(p.read_text())
    for img in data:
        for r in img["regions"]:
            r["phrase"] = f'{r.get("phrase")} }}, {{"regions": [{{"region_id": 1}}'
    p.write_text(json.dumps(data))
    fused, generic, _ = _both(raw, tmp_path, monkeypatch, threads=4)
    assert outcomes == ["ok"]
    assert fused == generic


def test_a_cut_below_the_top_level_falls_back_to_one_parse(corpus: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Region objects that start with a ``regions`` key: the separator pattern also occurs between two
    regions (depth 3), a range ends there, DuckDB rejects it, the file is parsed whole: same tables."""
    outcomes = _split_spy(monkeypatch)
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    data = json.loads(p.read_text())
    for img in data:
        img["regions"] = [{"regions": 0, **r} for r in img["regions"]]
    p.write_text(json.dumps(data))
    fused, generic, seen = _both(raw, tmp_path, monkeypatch, threads=6)
    assert outcomes == ["fallback"] and seen[0] is not None
    assert fused == generic
    assert not [f for f in (tmp_path / "lake-True" / "_tmp").rglob("*") if f.is_file()]


def test_a_bad_middle_with_ranges_still_names_the_file(corpus: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed number in the middle of the file: a range fails, the whole parse fails too, and the
    error names the region file (a file-level error: VG's other files load); nothing is left behind."""
    outcomes = _split_spy(monkeypatch)
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    text = p.read_text()
    i = text.index('"x"', len(text) // 2)
    p.write_text(text[:i] + '"x": 1x2, ' + text[i:])
    lake = tmp_path / "lake"
    stats = ingest_source(IngestConfig(raw_root=raw, out=lake, threads=3), "vg")
    assert [e["file"] for e in stats["errors"]] == ["vg/region_descriptions.json"]
    assert outcomes == ["fallback"]
    assert pq.read_metadata(lake / "regions" / "source=vg" / "part-0.parquet").num_rows == 0
    assert not list((lake / "_tmp").iterdir())


@pytest.mark.parametrize("swap", [False, True])
def test_ids_must_increase_across_ranges(corpus: Path, tmp_path: Path, swap: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids 1, 2, 3, ... in file order skip the id lookup on the split path; the two halves swapped (ids
    increase inside each range, not across them) run it, and the tables still equal the generic path's."""
    outcomes = _split_spy(monkeypatch)
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "vg/region_descriptions.json"
    data = _renumbered_regions(p)
    if swap:
        data = data[len(data) // 2:] + data[: len(data) // 2]
    p.write_text(json.dumps(data))
    queries = _query_spy(monkeypatch)
    fused, generic, seen = _both(raw, tmp_path, monkeypatch, threads=2)
    assert outcomes == ["ok"] and seen[0] is not None
    assert fused == generic
    assert ("fused_ids_check" in queries) is swap


def test_split_chain_checks_ids_across_parts() -> None:
    parts = []
    for ids in ([1, 2], [], [3, 9], [None]):
        s = fused_mod._Split()
        s.see_ids(pa.array(ids, pa.int64()))
        parts.append(s)
    assert fused_mod._Split.chain(parts).ids_increasing
    assert (fused_mod._Split.chain(parts).first_id, fused_mod._Split.chain(parts).last_id) == (1, 9)
    assert not fused_mod._Split.chain([parts[2], parts[0]]).ids_increasing
    assert not fused_mod._Split.chain([parts[0], parts[0]]).ids_increasing  # 2 then 1: equal/decreasing
