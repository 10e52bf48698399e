"""Issue #16: the malformed-input corpus (tests/data/lake_faults.py) through the ingest and the CLI.

Every case has its exact outcome: the value loaded, the quarantine reason and locator, or the file
error's text; for every file and entity of every ingest, rows_in = loaded + quarantined. Faults of one
kind share one ingest (one planted file, many lines) so the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from xvlm.data.lake import IngestConfig, SourceFailed, ingest_errors, ingest_lake, ingest_source, lake_stats
from xvlm.data.lake.config import OpenImagesPaths

from . import lake_faults as lf
from .lake_faults import CC3M, COCO_CAP, COCO_INST, OI_BOXES, OI_CLASSES, VG


def _ingest(raw: Path, source: str, **kw: Any) -> dict[str, Any]:
    cfg = IngestConfig(raw_root=raw, out=raw.parent / "lake", check_images=False, threads=1, **kw)
    stats = ingest_source(cfg, source)
    check_counts(stats)
    return stats


def check_counts(stats: dict[str, Any]) -> None:
    """rows_in = loaded + quarantined for every file and entity, and the files add up to the entities."""
    total: dict[str, list[int]] = {}
    for file, es in stats["files"].items():
        for entity, e in es.items():
            assert e["rows_in"] == e["loaded"] + sum(e["quarantined"].values()), (file, entity)
            t = total.setdefault(entity, [0, 0])
            t[0] += e["rows_in"]
            t[1] += e["loaded"]
    assert {k: [e["rows_in"], e["loaded"]] for k, e in stats["entities"].items()} == total


def _table(lake: Path, table: str, source: str, cols: str, where: str = "true") -> list[tuple]:
    p = lake / table / f"source={source}" / "part-0.parquet"
    with duckdb.connect() as con:
        return con.execute(f"SELECT {cols} FROM read_parquet($p) WHERE {where} ORDER BY ALL",  # noqa: S608
                           {"p": str(p)}).fetchall()


def _quarantine(lake: Path, source: str) -> dict[tuple[str, str, str], str]:
    return {(e, f, loc): r for e, f, loc, r in _table(lake, "quarantine", source, "entity, file, locator, reason")}


# ------------------------------------------------------------------ 1. line-level isolation, TSV

TSV_FAULTS = [  # (line number, bytes of the line, reason); base lines are 'caption number i<TAB>url'
    (2, b"crlf line\thttp://sample.invalid/a.jpg\r", "mixed_line_ending"),
    (3, b"nul \x00 inside\thttp://sample.invalid/b.jpg", "nul_byte"),
    (4, b"caf\xe9 latin-1\thttp://sample.invalid/c.jpg", "invalid_utf8"),
    (5, b"no tab on this line", "wrong_column_count"),
    (6, b"three\tfields\thttp://sample.invalid/d.jpg", "wrong_column_count"),
    (7, b"", "blank_line"),
    (8, b"stray \r return\thttp://sample.invalid/e.jpg", "stray_carriage_return"),
]


@pytest.fixture(scope="module")
def tsv_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[bytes]]:
    raw = lf.write_base(tmp_path_factory.mktemp("tsv") / "raw")
    lines = lf.tsv_lines()  # 6 good lines; faults inserted at their line numbers
    for n, line, _ in TSV_FAULTS:
        lines.insert(n - 1, line)
    lines.append(b'a "dog with an unbalanced quote\thttp://sample.invalid/q.jpg')
    (raw / CC3M).write_bytes(b"\n".join(lines) + b"\n")
    lf.write_downloads(raw, (raw / CC3M).read_bytes())
    return raw.parent / "lake", _ingest(raw, "cc3m"), lines


@pytest.mark.parametrize("line,_bytes,reason", TSV_FAULTS, ids=[f[2] + str(f[0]) for f in TSV_FAULTS])
def test_tsv_bad_line_is_quarantined_with_its_line_number(tsv_lake: tuple, line: int, _bytes: bytes,
                                                          reason: str) -> None:
    lake, _, _ = tsv_lake
    q = _quarantine(lake, "cc3m")
    assert q[("images", CC3M, f"line {line}")] == reason
    assert q[("captions", CC3M, f"line {line}")] == reason


def test_tsv_every_other_line_loads_exactly_as_written(tsv_lake: tuple) -> None:
    lake, stats, lines = tsv_lake
    bad = {n for n, _, _ in TSV_FAULTS}
    want = sorted((f"cc3m_{i}", ln.split(b"\t")[0].decode()) for i, ln in enumerate(lines) if i + 1 not in bad)
    assert len(want) == 7
    assert _table(lake, "captions", "cc3m", "image_key, caption") == want
    assert ("cc3m_13", 'a "dog with an unbalanced quote') in want  # the quote is text, not CSV quoting
    e = stats["files"][CC3M]["images"]
    assert (e["rows_in"], sum(e["quarantined"].values())) == (len(lines), len(TSV_FAULTS))
    assert _table(lake, "quarantine", "cc3m", "raw", "locator = 'line 3' AND entity = 'images'") == \
        [("nul \x00 inside\thttp://sample.invalid/b.jpg",)]  # raw: the line as read


def test_tsv_with_no_usable_line_is_a_file_error(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / CC3M).write_bytes(b"a caption,http://sample.invalid/1.jpg\nanother,http://sample.invalid/2.jpg\n")
    with pytest.raises(SourceFailed) as exc:  # the source's only file: nothing is written for it
        _ingest(raw, "cc3m")
    assert exc.value.errors == {CC3M: "none of its 2 lines has the expected fields: wrong delimiter, or not "
                                      "this source's file?"}
    assert not (tmp_path / "lake" / "_manifest" / "cc3m.json").exists()


def test_tsv_crlf_file_with_one_lf_line(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    lines = lf.tsv_lines()
    (raw / CC3M).write_bytes(b"".join(ln + (b"\n" if i == 2 else b"\r\n") for i, ln in enumerate(lines)))
    lf.write_downloads(raw, (raw / CC3M).read_bytes())
    stats = _ingest(raw, "cc3m")
    assert _quarantine(tmp_path / "lake", "cc3m") == {("images", CC3M, "line 3"): "mixed_line_ending",
                                                      ("captions", CC3M, "line 3"): "mixed_line_ending"}
    urls = [u for (u,) in _table(tmp_path / "lake", "images", "cc3m", "url")]
    assert len(urls) == 5
    assert urls == sorted(ln.split(b"\t")[1].decode() for i, ln in enumerate(lines) if i != 2)  # no '\r' kept
    assert stats["errors"] == []


# ------------------------------------------------------------------ 1. line-level isolation, OpenImages


@pytest.fixture(scope="module")
def oi_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    raw = lf.write_base(tmp_path_factory.mktemp("oi") / "raw")
    (raw / OI_CLASSES).write_bytes(b'/m/01g317,Person\n/m/0aaaa,"unbalanced\n/m/011k07,"Tortoise, giant"\n'
                                   b"/m/01g317,Person again\n/m/0bbbb,Two,Names\n/m/0bt9lr,Dog\r\n/m/0cccc,\n")
    box = lf.oi_box_line
    (raw / OI_BOXES).write_bytes("\n".join([lf.OI_HEADER, box("000002b66c9c498e"), "00000c4d5e6f7a8b,xclick,/m/01g317",
                                            box("00000c4d5e6f7a8b", "/m/011k07"), box("0000aaaa00000001") + "\r",
                                            box("0000aaaa0000\x00002"), box("0000bbbb00000003", "/m/0aaaa")]).encode() + b"\n")
    return raw.parent / "lake", _ingest(raw, "openimages")


@pytest.mark.parametrize("entity,file,line,reason", [
    ("classes", OI_CLASSES, 2, "malformed_row"),        # an unbalanced quote spoils only its own line
    ("classes", OI_CLASSES, 4, "duplicate_id"),         # the same MID twice: the first name is kept
    ("classes", OI_CLASSES, 5, "wrong_column_count"),
    ("classes", OI_CLASSES, 6, "mixed_line_ending"),
    ("classes", OI_CLASSES, 7, "empty_text"),
    ("objects", OI_BOXES, 3, "wrong_column_count"),     # header is line 1
    ("objects", OI_BOXES, 5, "mixed_line_ending"),
    ("objects", OI_BOXES, 6, "nul_byte"),
    ("objects", OI_BOXES, 7, "unknown_label"),          # its class line was quarantined
])
def test_openimages_bad_line_is_quarantined(oi_lake: tuple, entity: str, file: str, line: int, reason: str) -> None:
    lake, _ = oi_lake
    assert _quarantine(lake, "openimages")[(entity, file, f"line {line}")] == reason


def test_openimages_good_lines_load_as_written(oi_lake: tuple) -> None:
    lake, stats = oi_lake
    assert stats["files"][OI_CLASSES]["classes"] == {"rows_in": 7, "loaded": 2, "quarantined": {
        "duplicate_id": 1, "empty_text": 1, "malformed_row": 1, "mixed_line_ending": 1, "wrong_column_count": 1}}
    # boxes of the good lines reach the box rule (sizes unknown without image files: unknown_image_size)
    q = _quarantine(lake, "openimages")
    assert q[("objects", OI_BOXES, "line 2")] == q[("objects", OI_BOXES, "line 4")] == "unknown_image_size"
    raw = _table(lake, "quarantine", "openimages", "raw", "locator = 'line 4' AND entity = 'objects'")[0][0]
    assert json.loads(raw)["label"] == "Tortoise, giant"  # a quoted name with a comma, read whole


def test_openimages_box_file_without_its_columns_is_a_file_error(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / OI_BOXES).write_text(lf.OI_HEADER.replace("XMin", "Xmin") + "\n" + lf.oi_box_line("000002b66c9c498e") + "\n")
    stats = _ingest(raw, "openimages")
    assert stats["errors"] == [{"file": OI_BOXES, "error": "header lacks column(s) XMin: not an OpenImages box file?"}]
    assert stats["files"][OI_CLASSES]["classes"]["loaded"] == 3  # the class file still counted and used


# ------------------------------------------------------------------ 1./3. the OpenImages size index, line by line

OI_SIZE_FAULTS = [  # (line number, bytes of the line, reason); the header is line 1
    (3, b"00000c4d5e6f7a8b,683,1024\r", "mixed_line_ending"),
    (4, b"0000aaaa0000\x00001,640,480", "nul_byte"),
    (5, b"0000bbbb00000002,640", "wrong_column_count"),
    (6, b"0000bbbb00000003,640,480,1", "wrong_column_count"),
    (7, b"0000cccc00000004,wide,480", "invalid_number"),
    (8, b"0000cccc00000005,640,0", "invalid_number"),           # zero height
    (9, b"0000cccc00000006,640,-5", "invalid_number"),          # negative height
    (10, b",640,480", "invalid_id"),                            # empty ImageID
    (11, b"000002b66c9c498e,1,1", "duplicate_id"),              # conflicts with line 2: line 2 is used
    (12, b"000002b66c9c498e,1024,768", "duplicate_id"),         # identical to line 2: still a repeat in one file
    (13, b"", "blank_line"),
    (14, b"0000dddd00000007,64\xe9,480", "invalid_utf8"),
    (15, b"00000c4d5e6f7a8b,640.0,480", "invalid_number"),     # a decimal: not an integer as written
]


def _oi_sized(raw: Path) -> dict[str, Any]:
    return _ingest(raw, "openimages", openimages=OpenImagesPaths(image_sizes=lf.OI_SIZES))


@pytest.fixture(scope="module")
def oi_sizes_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    raw = lf.write_base(tmp_path_factory.mktemp("oisizes") / "raw")
    lines = [b"000002b66c9c498e,1024,768", *(f[1] for f in OI_SIZE_FAULTS), b"ffff000011112222,800,600"]
    lf.write_oi_sizes(raw, lines)
    return raw.parent / "lake", _oi_sized(raw)


@pytest.mark.parametrize("line,_bytes,reason", OI_SIZE_FAULTS, ids=[f[2] + str(f[0]) for f in OI_SIZE_FAULTS])
def test_openimages_size_index_bad_line_is_quarantined(oi_sizes_lake: tuple, line: int, _bytes: bytes,
                                                       reason: str) -> None:
    lake, _ = oi_sizes_lake
    assert _quarantine(lake, "openimages")[("image_sizes", lf.OI_SIZES, f"line {line}")] == reason


def test_openimages_size_index_lines_are_counted_and_good_ones_used(oi_sizes_lake: tuple) -> None:
    lake, stats = oi_sizes_lake
    assert stats["errors"] == []
    assert stats["files"][lf.OI_SIZES] == {"image_sizes": {"rows_in": 15, "loaded": 2, "quarantined": {
        "blank_line": 1, "duplicate_id": 2, "invalid_id": 1, "invalid_number": 4, "invalid_utf8": 1,
        "mixed_line_ending": 1, "nul_byte": 1, "wrong_column_count": 2}}}
    assert {k: v for k, v in _quarantine(lake, "openimages").items() if k[0] == "image_sizes"} == {
        ("image_sizes", lf.OI_SIZES, f"line {n}"): r for n, _, r in OI_SIZE_FAULTS}
    assert _table(lake, "quarantine", "openimages", "raw", "locator = 'line 7' AND entity = 'image_sizes'") == \
        [("0000cccc00000004,wide,480",)]
    # line 2's size (not the repeats'); the image whose lines are all bad has none: the index checked it,
    # the image is not quarantined (invalid_number is counted once, on the index line)
    assert _table(lake, "images", "openimages", "source_id, width, height") == [
        ("000002b66c9c498e", 1024, 768), ("00000c4d5e6f7a8b", None, None)]
    q = _quarantine(lake, "openimages")
    assert not [k for k in q if k[0] == "images"]
    assert q[("objects", OI_BOXES, "line 4")] == "unknown_image_size"  # the box of the size-less image
    boxes = _table(lake, "objects", "openimages", "image_key, label, x, y, w, h")
    assert [b[:2] for b in boxes] == [("oi_000002b66c9c498e", "Person"), ("oi_000002b66c9c498e", "Tortoise, giant")]
    for b in boxes:  # XMin 0.1, XMax 0.5, YMin 0.2, YMax 0.6 in a 1024 x 768 image
        assert b[2:] == pytest.approx((102.4, 153.6, 409.6, 307.2))


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_openimages_good_size_index_gives_exact_sizes(tmp_path: Path, eol: bytes) -> None:
    raw = lf.write_base(tmp_path / "raw")
    lf.write_oi_sizes(raw, [b"000002b66c9c498e,1024,768", b"00000c4d5e6f7a8b,683,1024"], eol=eol)
    stats = _oi_sized(raw)
    assert stats["errors"] == [] and stats["files"][lf.OI_SIZES] == {
        "image_sizes": {"rows_in": 2, "loaded": 2, "quarantined": {}}}
    assert _table(tmp_path / "lake", "images", "openimages", "source_id, width, height") == [
        ("000002b66c9c498e", 1024, 768), ("00000c4d5e6f7a8b", 683, 1024)]
    assert stats["entities"]["objects"] == {"rows_in": 3, "loaded": 3, "quarantined": {}}
    dog = _table(tmp_path / "lake", "objects", "openimages", "x, y, w, h", "label = 'Dog'")
    assert dog == [pytest.approx((68.3, 204.8, 273.2, 409.6))]


@pytest.mark.parametrize("content,error", [
    (b"", "empty file (0 bytes)"),
    (b" \n\n", "only whitespace (3 bytes)"),
    (b"000002b66c9c498e,1024,768\n00000c4d5e6f7a8b,683,1024\n",  # no header: its first line is taken as one
     "header lacks column(s) Height, ImageID, Width: not an OpenImages image size index (header "
     "ImageID,Width,Height)?"),
    (b"ImageID\tWidth\tHeight\n000002b66c9c498e\t1024\t768\n",  # tab-separated: one column 'ImageID<TAB>...'
     "header lacks column(s) Height, ImageID, Width: not an OpenImages image size index (header ImageID,Width,Height)?"),
    (b"ImageID;Width;Height\n000002b66c9c498e,1024,768\n00000c4d5e6f7a8b,683,1024\n",
     "none of its 2 lines has the expected fields: wrong delimiter, or not this source's file?"),
], ids=["empty", "whitespace", "no_header", "tabs", "no_line_fits"])
def test_openimages_unusable_size_index_is_an_error_of_that_file_only(tmp_path: Path, content: bytes,
                                                                      error: str) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / lf.OI_SIZES).write_bytes(content)
    stats = _oi_sized(raw)
    assert stats["errors"] == [{"file": lf.OI_SIZES, "error": error}]
    assert stats["files"][lf.OI_SIZES] == {"image_sizes": {"rows_in": 0, "loaded": 0, "quarantined": {}}}
    # the boxes and classes still load; the boxes have no size (no index, no image checks)
    assert stats["files"][OI_CLASSES]["classes"]["loaded"] == 3
    assert stats["files"][OI_BOXES]["objects"] == {"rows_in": 3, "loaded": 0, "quarantined": {"unknown_image_size": 3}}
    assert stats["files"][OI_BOXES]["images"] == {"rows_in": 2, "loaded": 2, "quarantined": {}}
    assert not [k for k in _quarantine(tmp_path / "lake", "openimages") if k[0] == "image_sizes"]


@pytest.mark.parametrize("header", [b"ImageID,Width,Height", b"Width,Height,ImageID"], ids=["as_documented", "reordered"])
def test_openimages_header_only_size_index_counts_zero(tmp_path: Path, header: bytes) -> None:
    """A header with no lines is a usable, empty index: zero rows, shown, no error."""
    raw = lf.write_base(tmp_path / "raw")
    lf.write_oi_sizes(raw, [], header=header)
    stats = _oi_sized(raw)
    assert stats["errors"] == []
    assert stats["files"][lf.OI_SIZES] == {"image_sizes": {"rows_in": 0, "loaded": 0, "quarantined": {}}}
    assert stats["entities"]["objects"]["quarantined"] == {"unknown_image_size": 3}


def test_openimages_size_index_columns_are_read_by_header_name(tmp_path: Path) -> None:
    """A reordered header is read by its names, like the box file's."""
    raw = lf.write_base(tmp_path / "raw")
    lf.write_oi_sizes(raw, [b"1024,768,000002b66c9c498e"], header=b"Width,Height,ImageID")
    stats = _oi_sized(raw)
    assert stats["errors"] == [] and stats["files"][lf.OI_SIZES]["image_sizes"]["loaded"] == 1
    assert _table(tmp_path / "lake", "images", "openimages", "source_id, width, height") == [
        ("000002b66c9c498e", 1024, 768), ("00000c4d5e6f7a8b", None, None)]


# ------------------------------------------------------------------ 2. strict JSON types (COCO format)

def _coco_faults(cap: dict[str, Any], inst: dict[str, Any]) -> None:
    cap["images"][0]["id"] = "201"                      # images[0]: a string id
    cap["images"][1]["width"] = None                    # images[1]: null where required
    cap["images"].append({"id": 9007199254740993, "file_name": "big.jpg", "width": 10, "height": 10})  # > 2^53
    cap["annotations"][0]["image_id"] = "202"           # the "image_id": "391895"
    cap["annotations"][1]["caption"] = 5                # a number where a string belongs
    cap["annotations"].append({"id": 9, "image_id": 9007199254740993, "caption": "the big id"})
    inst["annotations"][0]["bbox"] = ["22.93", 1, 2, 3]  # the bbox "22.93"
    inst["annotations"][1]["bbox"] = [1, 2, float("inf"), 3]
    inst["annotations"][2]["bbox"] = [1, 2, 3]
    inst["annotations"][3]["category_id"] = "1"
    inst["images"][2]["height"] = 481                   # conflicts with captions' images[2]
    inst["categories"].append({"id": "3", "name": "cat"})  # categories[2]: a string id
    inst["categories"].append({"id": 1, "name": "human"})  # categories[3]: id 1 again (objects keep 'person')


@pytest.fixture(scope="module")
def coco_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    raw = lf.write_base(tmp_path_factory.mktemp("coco") / "raw")
    cap = json.loads((raw / COCO_CAP["val2017"]).read_text())
    inst = json.loads((raw / COCO_INST["val2017"]).read_text())
    _coco_faults(cap, inst)
    (raw / COCO_CAP["val2017"]).write_text(json.dumps(cap))
    (raw / COCO_INST["val2017"]).write_text(json.dumps(inst))
    return raw.parent / "lake", _ingest(raw, "coco")


@pytest.mark.parametrize("entity,file,locator,reason", [
    ("images", COCO_CAP["val2017"], "images[0]", "wrong_type:id=string"),
    ("images", COCO_CAP["val2017"], "images[1]", "wrong_type:width=null"),
    ("captions", COCO_CAP["val2017"], "annotations[0]", "wrong_type:image_id=string"),
    ("captions", COCO_CAP["val2017"], "annotations[1]", "wrong_type:caption=integer"),
    ("objects", COCO_INST["val2017"], "annotations[0]", "wrong_type:bbox[0]=string"),
    ("objects", COCO_INST["val2017"], "annotations[1]", "wrong_type:bbox[2]=non-finite"),
    ("objects", COCO_INST["val2017"], "annotations[2]", "invalid_box"),
    ("objects", COCO_INST["val2017"], "annotations[3]", "wrong_type:category_id=string"),
    ("images", COCO_INST["val2017"], "images[2]", "duplicate_id"),  # a conflicting record of the same id
    ("categories", COCO_INST["val2017"], "categories[2]", "wrong_type:id=string"),
    ("categories", COCO_INST["val2017"], "categories[3]", "duplicate_id"),
])
def test_coco_wrong_json_type_is_quarantined_naming_field_and_type(coco_lake: tuple, entity: str, file: str,
                                                                   locator: str, reason: str) -> None:
    lake, _ = coco_lake
    assert _quarantine(lake, "coco")[(entity, file, locator)] == reason


def test_coco_ids_round_trip_as_bigint_and_identical_images_are_one(coco_lake: tuple) -> None:
    lake, stats = coco_lake
    big = 9007199254740993  # not a float: 2^53 + 1
    assert _table(lake, "images", "coco", "image_key, coco_id", f"coco_id = {big}") == [(f"coco_{big}", big)]
    assert _table(lake, "captions", "coco", "image_key, caption", "caption_id = '9'") == [(f"coco_{big}", "the big id")]
    # the instances file lists the same images: identical records are one image (merged), counted as loaded
    inst = stats["files"][COCO_INST["train2017"]]["images"]
    assert inst == {"rows_in": 3, "loaded": 3, "quarantined": {}, "merged": 3}
    keys = [k for (k,) in _table(lake, "images", "coco", "image_key")]
    assert len(keys) == len(set(keys)) == 3 + 2 + 1  # train 3; val 3 - string id - null width + big


def test_coco_categories_are_counted_per_file(coco_lake: tuple) -> None:
    lake, stats = coco_lake
    assert stats["files"][COCO_INST["val2017"]]["categories"] == {
        "rows_in": 4, "loaded": 2, "quarantined": {"duplicate_id": 1, "wrong_type:id=string": 1}}
    assert stats["files"][COCO_INST["train2017"]]["categories"] == {"rows_in": 2, "loaded": 2, "quarantined": {}}
    assert "categories" not in stats["files"][COCO_CAP["val2017"]]  # a captions file has none
    assert stats["entities"]["categories"]["rows_in"] == 6
    # the repeated id 1 ('human') does not rename the objects of category 1: the first record wins
    assert _table(lake, "objects", "coco", "DISTINCT label") == [("dog",), ("person",)]


# ------------------------------------------------------------------ 2./3. VG types and attributes counted


def test_vg_types_and_attributes_elements_are_counted(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    lf.edit_json(raw, VG["region_descriptions"], lambda d: d[0]["regions"][1].update(width="50"))
    lf.edit_json(raw, VG["objects"], lambda d: d[1]["objects"][0].update(x=True))

    def attrs(d: list) -> None:
        d[0]["attributes"][0]["object_id"] = "100"                      # string id
        d[1]["attributes"].append(dict(d[1]["attributes"][0]))        # same object twice
        d[1]["attributes"][1]["attributes"] = ["tall", 3]             # a number in the list
    lf.edit_json(raw, VG["attributes"], attrs)
    lf.edit_json(raw, VG["image_data"], lambda d: d[1].update(coco_id="12"))
    stats = _ingest(raw, "vg")
    q = _quarantine(tmp_path / "lake", "vg")
    assert q[("regions", VG["region_descriptions"], "[0].regions[1]")] == "wrong_type:width=string"
    assert q[("objects", VG["objects"], "[1].objects[0]")] == "wrong_type:x=boolean"
    assert q[("images", VG["image_data"], "[1]")] == "wrong_type:coco_id=string"
    assert q[("attributes", VG["attributes"], "[0].attributes[0]")] == "wrong_type:object_id=string"
    assert q[("attributes", VG["attributes"], "[1].attributes[1]")] == "wrong_type:attributes[]=not a string"
    assert q[("attributes", VG["attributes"], "[1].attributes[2]")] == "duplicate_id"
    assert stats["files"][VG["attributes"]]["attributes"] == {"rows_in": 5, "loaded": 2, "quarantined": {
        "duplicate_id": 1, "wrong_type:attributes[]=not a string": 1, "wrong_type:object_id=string": 1}}
    # object 100's attributes element was quarantined: the object loads with attributes NULL (not annotated)
    assert _table(tmp_path / "lake", "objects", "vg", "object_id, attributes", "object_id in ('100', '101')") == \
        [("100", None), ("101", ["green"])]


def test_sbu_list_elements_must_be_strings(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / "sbu").mkdir()
    urls = ["http://sample.invalid/sbu/0.jpg", "http://sample.invalid/sbu/1.jpg", 7]
    (raw / "sbu/sbu-captions-all.json").write_text(json.dumps(
        {"image_urls": urls, "captions": ["a man on a bike", 5, "a dog"], "user_ids": ["u", "v", "w"]}))
    _ingest(raw, "sbu")
    q = _quarantine(tmp_path / "lake", "sbu")
    f = "sbu/sbu-captions-all.json"
    assert q[("captions", f, "captions[1]")] == q[("images", f, "image_urls[1]")] == "wrong_type:captions[]=integer"
    assert q[("captions", f, "captions[2]")] == q[("images", f, "image_urls[2]")] == "wrong_type:image_urls[]=integer"
    assert q[("images", f, "image_urls[0]")] == "not_downloaded"  # the good row reaches the download check


def test_karpathy_types(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")

    def faults(d: dict) -> None:
        d["images"][0]["cocoid"] = "200"
        d["images"][1]["split"] = 1
        d["images"][2]["sentences"] += [{"raw": None, "sentid": 7}, {"raw": "two dogs", "sentid": "8"},
                                        {"raw": "a cat", "sentid": 9}]
    lf.edit_json(raw, lf.KARPATHY_COCO, faults)
    stats = _ingest(raw, "karpathy")
    assert _quarantine(tmp_path / "lake", "karpathy") == {
        ("splits", lf.KARPATHY_COCO, "images[0]"): "wrong_type:cocoid=string",
        ("splits", lf.KARPATHY_COCO, "images[1]"): "wrong_type:split=integer",
        ("sentences", lf.KARPATHY_COCO, "images[2].sentences[1]"): "wrong_type:raw=null",
        ("sentences", lf.KARPATHY_COCO, "images[2].sentences[2]"): "wrong_type:sentid=string"}
    assert _table(tmp_path / "lake", "splits", "karpathy", "image_key, split, coco_id") == [("coco_202", "train", 202)]
    assert stats["errors"] == []
    # every sentence counted (one per image + the three added), whatever became of its image
    assert stats["files"][lf.KARPATHY_COCO] == {
        "splits": {"rows_in": 3, "loaded": 1, "quarantined": {"wrong_type:cocoid=string": 1, "wrong_type:split=integer": 1}},
        "sentences": {"rows_in": 6, "loaded": 4, "quarantined": {"wrong_type:raw=null": 1, "wrong_type:sentid=string": 1}}}


REFCOCO_VAL = "refcoco+/refcoco+_val.json"


def test_refcoco_plus_types(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    img = "train2014/COCO_train2014_{:012d}.jpg".format
    lf._json(raw, REFCOCO_VAL, [
        {"image": img(201), "text": "the man", "ref_id": 1},     # [0] good
        {"image": img(201), "text": "man left", "ref_id": 2},    # [1] good, same image: one row with [0]
        {"image": img(201), "text": "man right", "ref_id": "3"},  # [2] a string for a number
        {"image": None, "text": "who", "ref_id": 4},             # [3] null where required
        {"image": img(202), "text": 5, "ref_id": 5},              # [4] a number for a string
        {"image": img(202), "text": "no ref id"},                 # [5] a required field absent
        {"image": img(202), "text": "x", "ref_id": 6.5},          # [6] a fraction for an id
        {"image": "train2014/broken.jpg", "text": "y", "ref_id": 7},  # [7] no COCO id in the name
        {"image": img(203), "text": "the dog", "ref_id": 8},      # [8] good
    ])
    stats = _ingest(raw, "karpathy")
    q = {k: v for k, v in _quarantine(tmp_path / "lake", "karpathy").items() if k[1] == REFCOCO_VAL}
    assert q == {("splits", REFCOCO_VAL, "[2]"): "wrong_type:ref_id=string",
                 ("splits", REFCOCO_VAL, "[3]"): "wrong_type:image=null",
                 ("splits", REFCOCO_VAL, "[4]"): "wrong_type:text=integer",
                 ("splits", REFCOCO_VAL, "[5]"): "wrong_type:ref_id=null",
                 ("splits", REFCOCO_VAL, "[6]"): "wrong_type:ref_id=number",
                 ("splits", REFCOCO_VAL, "[7]"): "invalid_id"}
    assert _table(tmp_path / "lake", "splits", "karpathy", "image_key, split", "dataset = 'refcoco+'") == \
        [("coco_201", "val"), ("coco_203", "val")]
    assert stats["files"][REFCOCO_VAL]["splits"]["rows_in"] == 8  # 2 images + 6 unusable records


# ------------------------------------------------------------------ 4. file-level errors stay file-level

FILE_FAULTS = [  # (file, how it is broken, the error's text)
    (COCO_INST["train2017"], b"", "empty file (0 bytes)"),
    (COCO_INST["train2017"], b"  \n\t\n", "only whitespace (5 bytes)"),
    (COCO_INST["train2017"], b'{"images": [{"id": 1, "file_na', "unusable input (Invalid Input Error: "),
    (COCO_INST["train2017"], None, "input file not found"),
    (COCO_INST["train2017"], "dangling", "input file not found (a dangling link?)"),
    (COCO_INST["train2017"], "folder", "a folder, not a file"),
]


@pytest.mark.parametrize("rel,content,error", FILE_FAULTS, ids=["empty", "whitespace", "truncated", "missing", "dangling", "folder"])
def test_unusable_file_is_an_error_of_that_file_only(tmp_path: Path, rel: str, content: Any, error: str) -> None:
    raw = lf.write_base(tmp_path / "raw")
    p = raw / rel
    p.unlink()
    if content == "dangling":
        p.symlink_to(raw / "nowhere.json")
    elif content == "folder":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    stats = _ingest(raw, "coco")
    assert len(stats["errors"]) == 1 and stats["errors"][0]["file"] == rel
    assert stats["errors"][0]["error"].startswith(error)
    # the broken file lists its entities with zero rows; the source's other three files loaded
    assert stats["files"][rel] == {e: {"rows_in": 0, "loaded": 0, "quarantined": {}}
                                   for e in ("images", "objects", "categories")}
    assert stats["files"][COCO_CAP["train2017"]]["captions"]["loaded"] == 4
    assert stats["files"][COCO_INST["val2017"]]["objects"]["loaded"] == 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file without read permission")
def test_unreadable_file_is_an_error_of_that_file(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / VG["objects"]).chmod(0)
    stats = _ingest(raw, "vg")
    assert stats["errors"] == [{"file": VG["objects"], "error": "unreadable (Permission denied)"}]


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_file_that_fails_to_read_is_an_error_of_that_file(tmp_path: Path) -> None:
    """/proc/self/mem is a regular file whose read at offset 0 fails with EIO (even for root)."""
    raw = lf.write_base(tmp_path / "raw")
    cfg = IngestConfig(raw_root=raw, out=tmp_path / "lake", check_images=False).with_files(
        {"vg.objects": "/proc/self/mem"})
    stats = ingest_source(cfg, "vg")
    assert stats["errors"] == [{"file": "/proc/self/mem", "error": "unreadable (Input/output error)"}]
    assert stats["entities"]["regions"]["loaded"] == 4


def test_all_files_unusable_writes_nothing_for_that_source_only(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / CC3M).write_bytes(b"")
    cfg = IngestConfig(raw_root=raw, out=tmp_path / "lake", check_images=False, threads=1)
    stats = ingest_lake(cfg, sources=["cc3m", "objects365", "karpathy"])
    assert stats["cc3m"]["failed"] and not (tmp_path / "lake" / "_manifest" / "cc3m.json").exists()
    assert ingest_errors(stats) == [f"cc3m: {CC3M}: empty file (0 bytes)"]
    assert stats["objects365"]["entities"]["objects"]["loaded"] == 1
    # the karpathy source with only the COCO file downloaded: no error (item 8)
    assert stats["karpathy"]["errors"] == [] and stats["karpathy"]["entities"]["splits"]["loaded"] == 3
    assert set(lake_stats(tmp_path / "lake")) == {"objects365", "karpathy"}


# ------------------------------------------------------------------ 8. file names of each release


@pytest.mark.parametrize("name,header", [("oidv7-class-descriptions-boxable.csv", "LabelName,DisplayName\n"),
                                         ("class-descriptions-boxable.csv", "")])
def test_openimages_class_file_of_each_release_is_found(tmp_path: Path, name: str, header: str) -> None:
    raw = lf.write_base(tmp_path / "raw")
    text = (raw / OI_CLASSES).read_text()
    (raw / OI_CLASSES).unlink()
    (raw / "openimages" / name).write_text(header + text)
    stats = _ingest(raw, "openimages")
    assert stats["files"][f"openimages/{name}"]["classes"] == {"rows_in": 3, "loaded": 3, "quarantined": {}}


def test_file_names_override_by_dotted_key(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / VG["objects"]).rename(raw / "vg/objects_v1_2.json")  # a default alternative: found as is
    (raw / VG["attributes"]).rename(raw / "vg/my_attributes.json")
    cfg = IngestConfig(raw_root=raw, out=tmp_path / "lake", check_images=False).with_files(
        {"vg.attributes": "vg/my_attributes.json"})
    stats = ingest_source(cfg, "vg")
    assert stats["errors"] == [] and set(stats["files"]) == {
        VG["image_data"], VG["region_descriptions"], "vg/objects_v1_2.json", "vg/my_attributes.json"}
    assert IngestConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="vg has no file 'object'"):
        cfg.with_files({"vg.object": "x.json"})


# ------------------------------------------------------------------ 4. the CLI: one line per error, exit 2


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=300, check=False)


def test_cli_ingest_with_broken_files_ingests_the_rest_and_exits_2(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (raw / VG["region_descriptions"]).write_bytes(b'[{"id": 1, "regions": [')       # truncated
    (raw / OI_CLASSES).write_bytes(b"")                                             # empty
    lake = tmp_path / "lake"
    args = ["ingest", str(raw), str(lake), "-s", "vg", "-s", "openimages", "-s", "cc3m"]
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert errs[0].startswith(f"error: vg: {VG['region_descriptions']}: unusable input (")
    assert errs[1] == f"error: openimages: {OI_CLASSES}: empty file (0 bytes)"
    assert errs[2].startswith("error: 2 input files could not be used")
    assert f"file {VG['objects']}" in r.stdout and "lake written to" in r.stdout  # stats of what it wrote
    # every entity of every file in `lake stats`, zero rows included
    s = _cli("lake", "stats", str(lake))
    assert s.returncode == 0 and f"file {OI_CLASSES}  ERROR\n    classes     read         0" in s.stdout
    # a rerun skips the unchanged sources and still reports the errors
    again = _cli(*args)
    assert again.returncode == 2 and "(unchanged, skipped)" in again.stdout and errs[1] in again.stderr
    bad = _cli("ingest", str(raw), str(lake), "--file", "nonsense")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --file 'nonsense': expected SOURCE.FIELD")
    assert "Traceback" not in bad.stderr


def test_cli_openimages_size_index_faults(tmp_path: Path) -> None:
    """An unusable size index: one line naming it, exit 2, the boxes ingested, ERROR in `lake stats`;
    bad lines in it: quarantined and counted, exit 0."""
    raw = lf.write_base(tmp_path / "raw")
    (raw / lf.OI_SIZES).write_bytes(b"")
    lake = tmp_path / "lake"
    args = ["ingest", str(raw), str(lake), "-s", "openimages", "--file", f"openimages.image_sizes={lf.OI_SIZES}"]
    r = _cli(*args)
    assert "Traceback" not in r.stderr + r.stdout
    assert (r.returncode, [ln for ln in r.stderr.splitlines() if ln.startswith("error")]) == (
        2, [f"error: openimages: {lf.OI_SIZES}: empty file (0 bytes)"])
    s = _cli("lake", "stats", str(lake))
    assert s.returncode == 0 and f"file {lf.OI_SIZES}  ERROR\n    image_sizes read         0" in s.stdout
    assert check_counts(lake_stats(lake)["openimages"]) is None
    assert lake_stats(lake)["openimages"]["files"][OI_BOXES]["objects"]["rows_in"] == 3
    lf.write_oi_sizes(raw, [b"000002b66c9c498e,1024,768", b"00000c4d5e6f7a8b,68\x003,1024", b"00000c4d5e6f7a8b,0,1"])
    r = _cli(*args)
    assert r.returncode == 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert ("    image_sizes read         3  loaded         1  quarantined       2  (invalid_number=1, nul_byte=1)"
            in r.stdout)


def test_cli_lake_path_that_is_a_file_and_unknown_source_are_one_line(tmp_path: Path) -> None:
    raw = lf.write_base(tmp_path / "raw")
    (tmp_path / "lake").write_text("not a folder")
    r = _cli("ingest", str(raw), str(tmp_path / "lake"), "-s", "cc3m")
    assert (r.returncode, r.stderr.strip().splitlines()) == (2, [
        f"error: {tmp_path / 'lake'}: exists and is not a folder; give the output as a folder (or a path to create)"])
    assert (tmp_path / "lake").read_text() == "not a folder"
    r = _cli("ingest", str(raw), str(tmp_path / "lake2"), "-s", "cc3m", "-s", "nosuch")
    assert (r.returncode, r.stderr.strip().splitlines()) == (2, [
        "error: unknown source 'nosuch'; the sources are: coco, karpathy, flickr30k, vg, cc3m, cc12m, sbu, "
        "objects365, openimages"])
    assert not (tmp_path / "lake2").exists()  # nothing written before the check
    r = _cli("ingest", str(tmp_path / "noraw"), str(tmp_path / "lake3"))  # was 9 "not found" lines, one per source
    assert (r.returncode, r.stderr.strip().splitlines()) == (2, [
        f"error: {tmp_path / 'noraw'}: raw root not found (the folder holding the sources' files)"])
    assert not (tmp_path / "lake3").exists()


def test_cli_every_file_fault_at_once_one_line_each(tmp_path: Path) -> None:
    """Each file-level fault of FILE_FAULTS planted in a different file of one raw tree, with record
    faults (the TSV's bad lines) beside them: one `error:` line per broken file, exit 2, no traceback,
    and the other files of the same sources loaded."""
    raw = lf.write_base(tmp_path / "raw")
    (raw / COCO_INST["train2017"]).write_bytes(b"")
    (raw / lf.O365).write_bytes(b"  \n\t\n")
    (raw / VG["region_descriptions"]).write_bytes(b'[{"id": 1, "regions": [')
    (raw / COCO_CAP["val2017"]).unlink()
    (raw / OI_CLASSES).unlink()
    (raw / OI_CLASSES).symlink_to(raw / "nowhere.csv")
    (raw / VG["attributes"]).unlink()
    (raw / VG["attributes"]).mkdir()
    lines = lf.tsv_lines()
    lines[2:2] = [f[1] for f in TSV_FAULTS]
    (raw / CC3M).write_bytes(b"\n".join(lines) + b"\n")
    r = _cli("ingest", str(raw), str(tmp_path / "lake"), "-s", "coco", "-s", "objects365", "-s", "vg",
             "-s", "openimages", "-s", "cc3m")
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    want = {f"error: coco: {COCO_CAP['val2017']}: input file not found",
            f"error: coco: {COCO_INST['train2017']}: empty file (0 bytes)",
            f"error: vg: {VG['attributes']}: a folder, not a file",
            f"error: objects365: {lf.O365}: only whitespace (5 bytes)",
            f"error: openimages: {OI_CLASSES}: input file not found (a dangling link?)"}
    assert want <= set(errs)
    assert [e for e in errs if e not in want] == [
        next(e for e in errs if e.startswith(f"error: vg: {VG['region_descriptions']}: unusable input (")),
        "error: 6 input files could not be used (listed above); everything else was ingested"]
    stats = lake_stats(tmp_path / "lake")
    for source in ("coco", "vg", "openimages", "cc3m"):  # objects365's one file failed: it wrote nothing
        check_counts(stats[source])
    assert "objects365" not in stats
    # the other files were read (the CLI checks image files, and this tree has none: image_not_loaded)
    assert stats["coco"]["files"][COCO_CAP["train2017"]]["captions"]["rows_in"] == 4
    assert stats["vg"]["files"][VG["objects"]]["objects"]["rows_in"] == 4
    assert stats["cc3m"]["files"][CC3M]["images"]["rows_in"] == len(lines)
    q = stats["cc3m"]["files"][CC3M]["images"]["quarantined"]
    want_lines = Counter(f[2] for f in TSV_FAULTS)
    assert {r: q.get(r) for r in want_lines} == dict(want_lines)
