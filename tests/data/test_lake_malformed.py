"""Malformed inputs: an unusable file is an error naming it (the source's other files still load); a
bad row is quarantined with its reason and rows_in = loaded + quarantined still holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xvlm.data.lake import IngestConfig, LakeInputError, ingest_source
from xvlm.data.sample_corpus import write_sample_corpus

from .lake_fixtures import copy_corpus, parquet_rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("malformed") / "raw", seed=0)


@pytest.fixture()
def raw(corpus: Path, tmp_path: Path) -> Path:
    return copy_corpus(corpus, tmp_path / "raw")


def ingest(raw: Path, source: str) -> dict[str, Any]:
    stats = ingest_source(IngestConfig(raw_root=raw, out=raw.parent / "lake"), source)
    for entity, e in stats["entities"].items():
        assert e["rows_in"] == e["loaded"] + sum(e["quarantined"].values()), entity
    return stats


def quarantine(raw: Path, source: str) -> list[tuple]:
    return [r[1:5] for r in parquet_rows(raw.parent / "lake", "quarantine", source)]


@pytest.mark.parametrize("rel,source", [("vg/region_descriptions.json", "vg"),
                                        ("coco/annotations/instances_train2017.json", "coco"),
                                        ("karpathy/dataset_coco.json", "karpathy")])
def test_truncated_json_names_the_file(raw: Path, rel: str, source: str) -> None:
    p = raw / rel
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    stats = ingest(raw, source)
    assert [e["file"] for e in stats["errors"]] == [rel] and "unusable input" in stats["errors"][0]["error"]
    # no partial output of that file; every other file of the source loaded
    assert all(e["rows_in"] == 0 for e in stats["files"][rel].values())
    assert sum(e["loaded"] for f, es in stats["files"].items() if f != rel for e in es.values()) > 0


def test_non_utf8_json_names_the_file(raw: Path) -> None:
    p = raw / "vg/image_data.json"
    p.write_bytes(p.read_bytes().replace(b'"url":"', b'"url":"\xff', 1))
    stats = ingest(raw, "vg")
    assert [e["file"] for e in stats["errors"]] == ["vg/image_data.json"]
    assert stats["errors"][0]["error"].startswith("not valid UTF-8 at byte ")


def test_string_where_a_number_belongs_is_quarantined(raw: Path) -> None:
    p = raw / "vg/region_descriptions.json"
    data = json.loads(p.read_text())
    data[0]["regions"][1]["x"] = "left"        # a string -> wrong_type
    data[2]["regions"][1]["y"] = "7"           # a numeric string too: strict types, never cast
    p.write_text(json.dumps(data))
    imgs = json.loads((raw / "vg/image_data.json").read_text())
    imgs[1]["width"] = "wide"
    (raw / "vg/image_data.json").write_text(json.dumps(imgs))
    stats = ingest(raw, "vg")
    q = quarantine(raw, "vg")
    assert ("regions", "vg/region_descriptions.json", "[0].regions[1]", "wrong_type:x=string") in q
    assert ("regions", "vg/region_descriptions.json", "[2].regions[1]", "wrong_type:y=string") in q
    assert ("images", "vg/image_data.json", "[1]", "wrong_type:width=string") in q
    rid = data[2]["regions"][1]["region_id"]
    assert parquet_rows(raw.parent / "lake", "regions", "vg", f"region_id = {int(rid)}") == []
    assert stats["entities"]["regions"]["quarantined"]["wrong_type:x=string"] == 1


def test_wrong_tsv_column_order_names_the_file(raw: Path) -> None:
    p = raw / "cc12m/cc12m.tsv"
    lines = [ln.split(b"\t") for ln in p.read_bytes().splitlines()]
    p.write_bytes(b"".join(b[1] + b"\t" + b[0] + b"\n" for b in lines))  # caption<TAB>url: CC3M's order
    with pytest.raises(LakeInputError, match=r"cc12m/cc12m\.tsv.*wrong column order"):
        ingest(raw, "cc12m")


def test_non_utf8_and_broken_tsv_lines_are_quarantined(raw: Path) -> None:
    p = raw / "cc3m/Train_GCC-training.tsv"
    lines = p.read_bytes().splitlines()
    n = len(lines)
    lines.insert(3, b"caf\xe9 latin-1 bytes\thttp://sample.invalid/x.jpg")   # line 4
    lines.insert(6, b"no tab on this line")                                 # line 7
    p.write_bytes(b"\n".join(lines) + b"\n")
    stats = ingest(raw, "cc3m")
    q = quarantine(raw, "cc3m")
    tsv = "cc3m/Train_GCC-training.tsv"
    assert ("images", tsv, "line 4", "invalid_utf8") in q and ("captions", tsv, "line 4", "invalid_utf8") in q
    assert ("images", tsv, "line 7", "wrong_column_count") in q
    assert stats["entities"]["images"]["rows_in"] == n + 2
    # row keys still follow the original line numbers after the rejected lines
    keys = {r[0]: r[5] for r in parquet_rows(raw.parent / "lake", "images", "cc3m")}
    assert keys["cc3m_9"] == lines[9].split(b"\t")[1].decode()


def test_duplicate_ids_are_quarantined(raw: Path) -> None:
    p = raw / "vg/image_data.json"
    imgs = json.loads(p.read_text())
    p.write_text(json.dumps([*imgs, imgs[2]]))
    c = raw / "coco/annotations/captions_val2017.json"
    doc = json.loads(c.read_text())
    doc["annotations"].append(dict(doc["annotations"][0]))
    c.write_text(json.dumps(doc))
    assert ingest(raw, "vg")["entities"]["images"]["quarantined"]["duplicate_id"] == 1
    assert ("images", "vg/image_data.json", f"[{len(imgs)}]", "duplicate_id") in quarantine(raw, "vg")
    last = f"annotations[{len(doc['annotations']) - 1}]"
    assert ingest(raw, "coco")["entities"]["captions"]["quarantined"]["duplicate_id"] == 1
    assert ("captions", "coco/annotations/captions_val2017.json", last, "duplicate_id") in quarantine(raw, "coco")


def test_sbu_lists_of_different_length_name_the_file(raw: Path) -> None:
    p = raw / "sbu/sbu-captions-all.json"
    doc = json.loads(p.read_text())
    doc["captions"].pop()
    p.write_text(json.dumps(doc))
    with pytest.raises(LakeInputError, match=r"sbu/sbu-captions-all\.json.*parallel lists"):
        ingest(raw, "sbu")


def test_openimages_reordered_columns_parse_by_name(raw: Path) -> None:
    before = ingest(raw, "openimages")["entities"]
    p = raw / "openimages/oidv6-train-annotations-bbox.csv"
    rows = [ln.split(",") for ln in p.read_text().splitlines()]
    order = list(reversed(range(len(rows[0]))))
    p.write_text("".join(",".join(r[i] for i in order) + "\n" for r in rows))
    after = ingest_source(IngestConfig(raw_root=raw, out=raw.parent / "lake2"), "openimages")["entities"]
    assert after == before


def test_missing_input_file_names_it(raw: Path) -> None:
    (raw / "vg/objects.json").unlink()
    stats = ingest(raw, "vg")
    assert stats["errors"] == [{"file": "vg/objects.json", "error": "input file not found"}]
    assert stats["files"]["vg/objects.json"] == {"objects": {"rows_in": 0, "loaded": 0, "quarantined": {}}}
