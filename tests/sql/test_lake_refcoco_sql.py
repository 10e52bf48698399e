"""sql/lake/refcoco_splits.sql: RefCOCO+ fine-tuning files -> candidate split rows (input rows -> expected rows)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from xvlm.data.lake.sqlrun import SqlRunner


@pytest.fixture()
def run() -> SqlRunner:
    r = SqlRunner(duckdb.connect(":memory:"))
    r.create("cand_splits", "empty_splits")
    yield r
    r.close()


def test_refcoco_splits_one_row_per_image_and_bad_records(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "refcoco+_val.json"
    p.write_text(json.dumps([
        {"image": "train2014/COCO_train2014_000000000042.jpg", "text": "left man", "ref_id": 1},
        {"image": "train2014/COCO_train2014_000000581857.jpg", "text": "red car", "ref_id": 2},
        {"image": "train2014/COCO_train2014_000000000042.jpg", "text": "man on the left", "ref_id": 1},
        {"image": "train2014/not_a_coco_name.jpg", "text": "x", "ref_id": 3},
        {"text": "no image", "ref_id": 4},
        {"image": "COCO_val2014_000000000007.jpg", "text": "no folder", "ref_id": 5},
    ]))
    run.insert("cand_splits", "refcoco_splits", path=p, file="refcoco+/refcoco+_val.json", split="val")
    run.create("t_splits", "final_splits")
    assert run.con.execute("SELECT dataset, split, image_key, coco_id, locator, reason FROM t_splits "
                           "ORDER BY locator").fetchall() == [
        ("refcoco+", "val", "coco_42", 42, "[0]", None),
        ("refcoco+", "val", "coco_581857", 581857, "[1]", None),
        ("refcoco+", "val", None, None, "[3]", "invalid_id"),
        ("refcoco+", "val", None, None, "[4]", "wrong_type:image=null"),  # strict types: a required field absent
        ("refcoco+", "val", "coco_7", 7, "[5]", None),
    ]


def test_refcoco_splits_unknown_split_is_quarantined(run: SqlRunner, tmp_path: Path) -> None:
    rec = [{"image": "train2014/COCO_train2014_000000000042.jpg", "text": "a", "ref_id": 1}]
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    run.insert("cand_splits", "refcoco_splits", path=tmp_path / "a.json", file="a.json", split="testA")
    run.insert("cand_splits", "refcoco_splits", path=tmp_path / "b.json", file="b.json", split="test")
    run.create("t_splits", "final_splits")
    assert run.con.execute("SELECT file, split, image_key, reason FROM t_splits ORDER BY file").fetchall() == [
        ("a.json", "testA", "coco_42", None), ("b.json", "test", "coco_42", "invalid_split")]
