"""COCO-format files parsed in parts (xvlm/data/lake/ranges.py ``object_members`` / ``cocofmt_parts``,
xvlm/data/lake/sources.py ``_cocofmt_docs``): the structural scan finds exactly the element boundaries,
the parted parse gives the same lake as the whole-file parse (tables, quarantine rows, locators,
stats), and a truncated or invalid file fails naming the file, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from bench.scale import generate
from xvlm.data.lake import TABLES, IngestConfig, LakeInputError, ingest_source, ranges
from xvlm.data.lake.config import KarpathyPaths

SOURCES = ("coco", "objects365", "karpathy")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cocofmt") / "raw"
    generate(out, 0.0005, ["coco", "objects365"])
    return out


def _cfg(raw: Path, lake: Path, **over: Any) -> IngestConfig:
    return IngestConfig(raw_root=raw, out=lake, check_images=False, flickr30k=None,
                        karpathy=KarpathyPaths(flickr30k=None, refcoco_plus=None), **over)


def _tables(lake: Path, source: str) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    try:
        return {t: sorted(con.execute("SELECT * FROM read_parquet($p)",
                                      {"p": str(lake / t / f"source={source}" / "part-0.parquet")}).fetchall(), key=repr)
                for t in TABLES}
    finally:
        con.close()


def _tricky_doc(rng: np.random.Generator) -> dict:
    """Strings full of the bytes the scan must not take for structure: quotes, backslash runs, brackets."""
    junk = ['a"b', "\\", "\\\\", '\\"', "},{", "],[", ",", "\u00e9\u4e2d", "x\\\\\\"]
    return {
        "info": {"description": "}, {\"images\": [", "nested": [[{"a": [1, 2]}], {"b": "]"}]},
        "images": [{"id": int(i), "file_name": f"{i}.jpg", "width": 640, "height": 480,
                    "url": "".join(rng.choice(junk, 3))} for i in range(1, 60)],
        "annotations": [{"id": int(k), "image_id": int(1 + k % 59), "bbox": [1.5, 2, 30, 40.25], "category_id": 1 + k % 3,
                         "caption": "".join(rng.choice(junk, 4)), "segmentation": [[1, 2, 3, 4]]} for k in range(150)],
        "categories": [{"id": 1, "name": 'a "quoted" cat'}, {"id": 2, "name": "b\\"}, {"id": 3, "name": "c"}],
        "licenses": [],
    }


@pytest.mark.parametrize("block", [5, 64, 4096])
def test_the_scan_cuts_exactly_at_element_boundaries(tmp_path: Path, block: int) -> None:
    doc = _tricky_doc(np.random.default_rng(block))
    p = tmp_path / "x.json"
    p.write_text(json.dumps(doc, indent=1 if block == 64 else None))  # whitespace between every token too
    raw = p.read_bytes()
    members = ranges.object_members(p, part_bytes=300, block=block)  # block 5: every token straddles reads
    assert list(members) == list(doc)
    for key, m in members.items():
        assert json.loads(raw[m.value[0]:m.value[1]]) == doc[key]
    for key in ("images", "annotations"):
        runs = members[key].elements
        assert len(runs) > 3
        assert [x for a, z in runs for x in json.loads(b"[" + raw[a:z] + b"]")] == doc[key]
    assert members["licenses"].elements == []  # an empty array has no parts


@pytest.mark.parametrize("cut", ["truncated", "string", "bracket", "trailing"])
def test_the_scan_refuses_a_broken_object(tmp_path: Path, cut: str) -> None:
    raw = json.dumps(_tricky_doc(np.random.default_rng(0))).encode()
    bad = {"truncated": raw[:-40], "string": raw[:-2] + b'"}', "bracket": raw[:-1] + b"]",
           "trailing": raw + b" {}"}[cut]
    p = tmp_path / "x.json"
    p.write_bytes(bad)
    with pytest.raises(ranges.JsonShapeError):
        ranges.object_members(p, part_bytes=300, block=64)


def test_parts_give_the_same_lake_as_the_whole_file(raw: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = ranges.cocofmt_parts

    def spy(*a: Any, **k: Any) -> Any:
        for item in real(*a, **k):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(ranges, "cocofmt_parts", spy)
    whole = _cfg(raw, tmp_path / "whole")
    for source in SOURCES:  # parts of ~4 KB (COCO's 0.2 MB instances) and ~100 KB (Objects365's 2.6 MB)
        parted = _cfg(raw, tmp_path / "parted", json_stream_threshold=200_000 if source == "objects365" else 8_000)
        a = ingest_source(whole, source)
        assert not seen  # every file is under the default threshold: parsed whole
        b = ingest_source(parted, source)
        assert seen.count("images") >= 2 and (source == "karpathy" or seen.count("annotations") >= 10)  # parted
        seen.clear()
        assert a["entities"] == b["entities"]
        ta, tb = _tables(whole.out, source), _tables(parted.out, source)
        assert ta == tb
        assert ta["splits" if source == "karpathy" else "objects"]
        assert ta["quarantine"] or source == "karpathy"  # planted bad rows are in both
    q = _tables(parted.out, "objects365")["quarantine"]
    assert any(str(r).count("annotations[") for r in q)  # locators are global indices, not per part


def test_a_part_that_does_not_parse_fails_naming_the_file(raw: Path, tmp_path: Path) -> None:
    src = raw / "objects365/zhiyuan_objv2_train.json"
    text = src.read_bytes()
    mid = text.index(b'"isreflected": ', len(text) // 2)
    broken = tmp_path / "raw"
    (broken / "objects365").mkdir(parents=True)
    # structure intact (no quote or bracket changed), one member invalid: only the part's parse can tell
    (broken / "objects365/zhiyuan_objv2_train.json").write_bytes(text[:mid] + b'"isreflected"; ' + text[mid + 15:])
    cfg = _cfg(broken, tmp_path / "lake", json_stream_threshold=200_000)
    with pytest.raises(LakeInputError, match=r"objects365/zhiyuan_objv2_train\.json: annotations bytes \d+-\d+"):
        ingest_source(cfg, "objects365")
    (broken / "objects365/zhiyuan_objv2_train.json").write_bytes(text[:-100])
    with pytest.raises(LakeInputError, match=r"zhiyuan_objv2_train\.json: not one well-formed JSON object"):
        ingest_source(cfg, "objects365")
    assert not any((cfg.out / t / "source=objects365").exists() for t in TABLES)  # no partial lake
    assert not list((cfg.out / "_tmp").glob("*"))  # and no part files left behind


def test_categories_of_a_parted_file_without_annotations_are_counted(tmp_path: Path) -> None:
    """A file parsed in parts whose annotations are empty (or absent) still counts its categories, exactly as
    the whole-file parse does."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(1, 400)]
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 2, "name": "again"}]
    stats = {}
    for anns in ([], None):
        doc = {"images": images, "categories": cats} | ({} if anns is None else {"annotations": anns})
        raw = tmp_path / f"raw-{anns is None}"
        (raw / "coco/annotations").mkdir(parents=True)
        (raw / "coco/annotations/instances_train2017.json").write_text(json.dumps(doc))
        (raw / "coco/annotations/captions_train2017.json").write_text(json.dumps({"images": images[:1], "annotations": [
            {"id": 1, "image_id": 1, "caption": "a person on a bicycle"}]}))
        for name, threshold in (("whole", 1 << 30), ("parted", 8_000)):
            cfg = _cfg(raw, tmp_path / f"{name}-{anns is None}", json_stream_threshold=threshold)
            stats[name] = ingest_source(cfg, "coco")["entities"]
        assert stats["whole"] == stats["parted"]
        assert stats["parted"]["categories"] == {"rows_in": 3, "loaded": 2, "quarantined": {"duplicate_id": 1}}
