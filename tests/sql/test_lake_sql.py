"""SQL tests for ``sql/lake``: each file runs on in-memory DuckDB with input rows -> expected rows.

Inputs are either rows inserted into the tables a query reads (candidate tables, built from the
``empty_*`` schemas) or tiny raw files in the real formats written to ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from xvlm.data.lake.lines import LineFaults, read_class_lines
from xvlm.data.lake.sqlrun import SqlRunner


@pytest.fixture()
def run() -> SqlRunner:
    r = SqlRunner(duckdb.connect(":memory:"))
    for t in ("images", "captions", "boxes", "splits", "rejects", "image_checks", "aux"):
        r.create(f"cand_{t}" if t != "image_checks" else t, f"empty_{t}")
    yield r
    r.close()


def put(run: SqlRunner, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts, missing columns NULL) into an existing table."""
    cols = [c[0] for c in run.con.execute(f"DESCRIBE {table}").fetchall()]
    for row in rows:
        unknown = set(row) - set(cols)
        assert not unknown, unknown
        run.con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})",  # noqa: S608 (test tables)
                        [row.get(c) for c in cols])


def rows(run: SqlRunner, sql: str) -> list[tuple]:
    return run.con.execute(sql).fetchall()


# ------------------------------------------------------------------ every file


# The header / one-statement check of every sql/ file: tests/sql/test_sql_rules.py.


def test_empty_tables_have_no_rows_and_stable_columns(run: SqlRunner) -> None:
    assert run.count("cand_images") == 0
    assert [c[0] for c in rows(run, "DESCRIBE cand_boxes")][:4] == ["entity", "image_key", "source", "box_id"]


# ------------------------------------------------------------------ the box rule


def _img(key: str, w: str | None = "100", h: str | None = "50", reason: str | None = None) -> dict:
    return {"image_key": key, "source": "t", "split": "train", "width": w, "height": h, "file": "f",
            "locator": key, "ord": 0, "reason": reason}


def _box(bid: str, c: tuple, key: str = "t_1", coords: str = "xywh", label: str = "a dog") -> dict:
    return {"entity": "regions", "image_key": key, "source": "t", "box_id": bid, "c0": c[0], "c1": c[1],
            "c2": c[2], "c3": c[3], "coords": coords, "label": label, "file": "f", "locator": bid, "ord": 0}


def test_final_boxes_applies_the_box_rule(run: SqlRunner) -> None:
    put(run, "cand_images", [_img("t_1"), _img("t_2", reason="missing_image_file"), _img("t_3", None, None)])
    run.create("t_images", "final_images", check_files=False)
    put(run, "cand_boxes", [
        _box("inside", ("10", "10", "20", "20")),
        _box("neg_x", ("-5", "10", "20", "10")),         # keeps 150/200 -> clipped to x=0, w=15
        _box("half", ("90", "0", "20", "10")),           # keeps exactly 50% -> loaded (>=)
        _box("outside", ("-30", "10", "20", "10")),      # keeps 0 -> quarantined
        _box("above", ("10", "-904", "20", "25")),       # VG's y + h < 0
        _box("zero", ("1", "1", "0", "5")),
        _box("text", ("abc", "1", "2", "3")),            # a string where a number belongs
        _box("norm", ("0.1", "0.5", "0.2", "0.6"), coords="xxyy_norm"),  # OpenImages
        _box("dup", ("1", "1", "2", "2")), {**_box("dup", ("1", "1", "2", "2")), "locator": "dup2", "ord": 1},
        _box("punct", ("1", "1", "2", "2"), label=" ... "),
        _box("nokey", ("1", "1", "2", "2"), key="t_9"),
        _box("lost", ("1", "1", "2", "2"), key="t_2"),
        _box("nosize", ("1", "1", "2", "2"), key="t_3"),
    ])
    run.create("t_boxes", "final_boxes", min_kept_fraction=0.5)
    got = {r[0]: r[1:] for r in rows(run, "SELECT box_id || '/' || locator, x, y, w, h, clipped, reason "
                                           "FROM t_boxes ORDER BY ALL")}
    assert got == {
        "inside/inside": (10.0, 10.0, 20.0, 20.0, False, None),
        "neg_x/neg_x": (0.0, 10.0, 15.0, 10.0, True, None),
        "half/half": (90.0, 0.0, 10.0, 10.0, True, None),
        "outside/outside": (None, None, None, None, False, "box_outside_image"),
        "above/above": (None, None, None, None, False, "box_outside_image"),
        "zero/zero": (None, None, None, None, False, "zero_size_box"),
        "text/text": (None, None, None, None, False, "invalid_box"),
        "norm/norm": (10.0, 10.0, 40.0, 20.0, False, None),
        "dup/dup": (1.0, 1.0, 2.0, 2.0, False, None),
        "dup/dup2": (None, None, None, None, False, "duplicate_id"),
        "punct/punct": (None, None, None, None, False, "empty_text"),
        "nokey/nokey": (None, None, None, None, False, "unknown_image"),
        "lost/lost": (None, None, None, None, False, "image_not_loaded"),
        "nosize/nosize": (None, None, None, None, False, "unknown_image_size"),
    }


def test_final_boxes_threshold_is_a_parameter(run: SqlRunner) -> None:
    put(run, "cand_images", [_img("t_1")])
    run.create("t_images", "final_images", check_files=False)
    put(run, "cand_boxes", [_box("neg_x", ("-5", "10", "20", "10"))])  # keeps 75%
    run.create("t_boxes", "final_boxes", min_kept_fraction=0.8)
    assert rows(run, "SELECT reason FROM t_boxes") == [("box_outside_image",)]


# ------------------------------------------------------------------ images, captions, splits


def test_final_images_reasons_and_sizes(run: SqlRunner) -> None:
    put(run, "cand_images", [
        _img("t_1", "100", "50"), _img("t_2", None, None), _img("t_3"), _img("t_4"), _img("t_5", "100", "50"),
        _img("t_6", "wide", "50"), _img(None), _img("t_7", reason="failed_to_download"),
        {**_img("t_1"), "locator": "second", "ord": 5},
    ])
    put(run, "image_checks", [
        {"image_key": "t_1", "status": "ok", "file_width": 100, "file_height": 50},
        {"image_key": "t_2", "status": "ok", "file_width": 640, "file_height": 480},
        {"image_key": "t_3", "status": "missing"}, {"image_key": "t_4", "status": "corrupt"},
        {"image_key": "t_5", "status": "ok", "file_width": 50, "file_height": 100},
    ])
    run.create("t_images", "final_images", check_files=True)
    got = rows(run, "SELECT image_key, locator, width, height, reason FROM t_images ORDER BY ALL")
    assert got == [
        ("t_1", "second", 100, 50, "duplicate_id"),
        ("t_1", "t_1", 100, 50, None),
        ("t_2", "t_2", 640, 480, None),                 # size from the JPEG header
        ("t_3", "t_3", 100, 50, "missing_image_file"),
        ("t_4", "t_4", 100, 50, "corrupt_image"),
        ("t_5", "t_5", 100, 50, "image_size_mismatch"),
        ("t_6", "t_6", None, 50, "invalid_number"),
        ("t_7", "t_7", 100, 50, "failed_to_download"),
        (None, None, 100, 50, "invalid_id"),
    ]


def test_final_captions_reasons(run: SqlRunner) -> None:
    put(run, "cand_images", [_img("t_1"), _img("t_2", reason="failed_to_download")])
    run.create("t_images", "final_images", check_files=False)
    cap = {"source": "t", "split": None, "file": "f", "ord": 0}
    put(run, "cand_captions", [
        {**cap, "image_key": "t_1", "caption_id": "1", "caption": 'a "quoted dog', "locator": "a"},
        {**cap, "image_key": "t_1", "caption_id": "1", "caption": "again", "locator": "b", "ord": 1},
        {**cap, "image_key": "t_1", "caption_id": "2", "caption": "  ", "locator": "c"},
        {**cap, "image_key": "t_1", "caption_id": "3", "caption": "?!.", "locator": "d"},
        {**cap, "image_key": "t_2", "caption_id": "4", "caption": "a cat", "locator": "e"},
        {**cap, "image_key": "t_9", "caption_id": "5", "caption": "a cow", "locator": "f"},
    ])
    run.create("t_captions", "final_captions")
    assert rows(run, "SELECT locator, split, reason FROM t_captions ORDER BY locator") == [
        ("a", "train", None), ("b", "train", "duplicate_id"), ("c", "train", "empty_text"),
        ("d", "train", "empty_text"), ("e", "train", "image_not_loaded"), ("f", None, "unknown_image")]


def test_final_splits_dedups(run: SqlRunner) -> None:
    base = {"dataset": "coco", "split": "test", "image_key": "coco_1", "coco_id": "1", "file": "f", "ord": 0}
    put(run, "cand_splits", [{**base, "locator": "a"}, {**base, "locator": "b", "ord": 1}])
    run.create("t_splits", "final_splits")
    assert rows(run, "SELECT locator, coco_id, reason FROM t_splits ORDER BY 1") == [
        ("a", 1, None), ("b", 1, "duplicate_id")]


# ------------------------------------------------------------------ parsers on tiny real-format files


def test_vg_regions_reads_id_and_width_height(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "region_descriptions.json"
    p.write_text(json.dumps([
        {"regions": [{"region_id": 1382, "width": 82, "height": 139, "image_id": 1, "phrase": "the clock",
                      "y": 57, "x": 421}], "id": 1},
        {"regions": [{"id": 7, "width": 5, "height": 6, "phrase": "x", "y": "3", "x": "abc"}], "id": 2},
    ]))
    run.insert("cand_boxes", "vg_regions", path=p, file="vg/rd.json")
    assert rows(run, "SELECT image_key, box_id, c0, c1, c2, c3, label, locator, reason FROM cand_boxes "
                     "ORDER BY 1") == [
        ("vg_1", "1382", "421", "57", "82", "139", "the clock", "[0].regions[0]", None),
        # strict JSON types: a string where a number belongs is quarantined (x first), never cast
        ("vg_2", "7", "abc", "3", "5", "6", "x", "[1].regions[0]", "wrong_type:x=string")]


def test_vg_objects_join_attributes(run: SqlRunner, tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text(json.dumps([{"image_id": 1, "objects": [
        {"object_id": 10, "x": 1, "y": 2, "w": 3, "h": 4, "names": ["clock", "watch"]},
        {"object_id": 11, "x": 1, "y": 2, "w": 3, "h": 4, "names": ["sky"]}]}]))
    (tmp_path / "a.json").write_text(json.dumps([{"image_id": 1, "attributes": [
        {"object_id": 10, "names": ["clock"], "attributes": ["green", "tall"]},
        {"object_id": 11, "names": ["sky"]}]}]))
    run.create("vg_attribute_rows", "vg_attribute_rows", path=tmp_path / "a.json", file="a")
    run.create("vg_attributes", "vg_attributes")
    run.insert("cand_boxes", "vg_objects", path=tmp_path / "o.json", file="o")
    assert rows(run, "SELECT box_id, label, attributes, c2, c3, locator FROM cand_boxes ORDER BY 1") == [
        ("10", "clock", ["green", "tall"], "3", "4", "[0].objects[0]"),
        ("11", "sky", None, "3", "4", "[0].objects[1]")]


def test_vg_images_paths_and_links(run: SqlRunner, tmp_path: Path) -> None:
    (tmp_path / "i.json").write_text(json.dumps([
        {"width": 800, "url": "https://x/VG_100K_2/1.jpg", "height": 600, "image_id": 1, "coco_id": None,
         "flickr_id": None},
        {"width": 8, "url": "https://x/VG_100K/5.jpg", "height": 6, "id": 5, "coco_id": 391895, "flickr_id": -1}]))
    run.insert("cand_images", "vg_images", path=tmp_path / "i.json", file="i", image_root="vg")
    run.create("t_images", "final_images", check_files=False)
    assert rows(run, "SELECT image_key, path, width, coco_id, flickr_id, locator FROM t_images ORDER BY 1") == [
        ("vg_1", "vg/VG_100K_2/1.jpg", 800, None, None, "[0]"),
        ("vg_5", "vg/VG_100K/5.jpg", 8, 391895, None, "[1]")]


def _coco_doc(tmp_path: Path) -> Path:
    p = tmp_path / "instances.json"
    p.write_text(json.dumps({
        "info": {}, "licenses": [],
        "images": [{"id": 391895, "file_name": "000000391895.jpg", "width": 640, "height": 360,
                    "coco_url": "http://images.cocodataset.org/train2017/000000391895.jpg"}],
        "annotations": [
            {"segmentation": [[1, 2, 3]], "area": 1.0, "iscrowd": 0, "image_id": 391895,
             "bbox": [473.07, 395.93, 38.65, 28.67], "category_id": 18, "id": 1768},
            {"segmentation": {"counts": [1, 2], "size": [2, 2]}, "iscrowd": 1, "image_id": 391895,
             "bbox": [0, 34, 639, 388], "category_id": 1, "id": 900100250282, "isfake": 1},
            {"iscrowd": 0, "image_id": 391895, "bbox": [1, 2, 3], "category_id": 1, "id": 3},
            {"iscrowd": 0, "image_id": 391895, "bbox": [1, 2, 3, 4], "category_id": 99, "id": 4}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}))
    return p


def test_cocofmt_images_and_objects(run: SqlRunner, tmp_path: Path) -> None:
    p = _coco_doc(tmp_path)
    run.create("cocofmt_doc", "cocofmt_doc", path=p, max_object_size=p.stat().st_size + 1)
    run.insert("cand_images", "cocofmt_images", source="coco", split="train2017", file="f", key_prefix="coco",
               image_dir="coco/train2017", path_parts=1, id_is_coco_id=True, idx_base=0)
    assert rows(run, "SELECT image_key, path, width, coco_id, locator FROM cand_images") == [
        ("coco_391895", "coco/train2017/000000391895.jpg", "640", "391895", "images[0]")]
    run.insert("cand_boxes", "cocofmt_objects", source="coco", file="f", key_prefix="coco", idx_base=0)
    assert rows(run, "SELECT box_id, c0, c3, label, is_group, flags, reason FROM cand_boxes ORDER BY ord") == [
        ("1768", "473.07", "28.67", "dog", "0", [], None),
        ("900100250282", "0", "388", "person", "1", ["fake"], None),
        ("3", "1", None, "person", "0", [], "invalid_box"),
        ("4", "1", "4", None, "0", [], "unknown_label")]


def test_cocofmt_images_objects365_path_quirk(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "o365.json"
    p.write_text(json.dumps({"images": [{"height": 512, "id": 420917, "width": 769, "url": "",
                                         "file_name": "images/v1/patch8/objects365_v1_00420917.jpg"}],
                             "annotations": [], "categories": []}))
    run.create("cocofmt_doc", "cocofmt_doc", path=p, max_object_size=p.stat().st_size + 1)
    run.insert("cand_images", "cocofmt_images", source="objects365", split="train", file="f",
               key_prefix="o365", image_dir="objects365/train", path_parts=2, id_is_coco_id=False, idx_base=0)
    assert rows(run, "SELECT image_key, path, url, coco_id FROM cand_images") == [
        ("o365_420917", "objects365/train/patch8/objects365_v1_00420917.jpg", None, None)]


def test_coco_captions(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "captions.json"
    p.write_text(json.dumps({"images": [], "annotations": [
        {"image_id": 203564, "id": 37, "caption": "A bicycle replica."},
        {"image_id": "x", "id": 38, "caption": "bad id"}]}))
    run.create("cocofmt_doc", "cocofmt_doc", path=p, max_object_size=10_000)
    run.insert("cand_captions", "coco_captions", source="coco", split="val2017", file="f", key_prefix="coco",
               idx_base=0)
    assert rows(run, "SELECT image_key, caption_id, caption, locator, reason FROM cand_captions ORDER BY ord") == [
        ("coco_203564", "37", "A bicycle replica.", "annotations[0]", None),
        (None, "38", "bad id", "annotations[1]", "wrong_type:image_id=string")]


def test_karpathy_splits_and_flickr(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"dataset": "flickr30k", "images": [
        {"filepath": "", "filename": "1000092795.jpg", "imgid": 0, "split": "test",
         "sentences": [{"raw": "Two young guys .", "sentid": 0}, {"raw": "A man .", "sentid": 1}]},
        {"filename": "10002456.jpg", "imgid": 1, "split": "bogus", "sentences": []}]}))
    run.create("karpathy_doc", "karpathy_doc", path=p, max_object_size=10_000)
    run.insert("cand_splits", "karpathy_splits", dataset="flickr30k", file="f", idx_base=0)
    assert rows(run, "SELECT image_key, split, flickr_id, reason FROM cand_splits ORDER BY ord") == [
        ("flickr30k_1000092795", "test", "1000092795", None), ("flickr30k_10002456", "bogus", "10002456",
                                                                "invalid_split")]
    run.insert("cand_images", "flickr30k_images", file="f", image_dir="flickr30k/flickr30k-images")
    run.insert("cand_captions", "flickr30k_captions", file="f")
    assert rows(run, "SELECT image_key, path FROM cand_images ORDER BY ord") == [
        ("flickr30k_1000092795", "flickr30k/flickr30k-images/1000092795.jpg"),
        ("flickr30k_10002456", "flickr30k/flickr30k-images/10002456.jpg")]
    assert rows(run, "SELECT image_key, caption, split, locator FROM cand_captions ORDER BY ord") == [
        ("flickr30k_1000092795", "Two young guys .", "test", "images[0].sentences[0]"),
        ("flickr30k_1000092795", "A man .", "test", "images[0].sentences[1]")]


def test_karpathy_coco_keys_by_cocoid(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "split": "test", "cocoid": 391895}]}))
    run.create("karpathy_doc", "karpathy_doc", path=p, max_object_size=10_000)
    run.insert("cand_splits", "karpathy_splits", dataset="coco", file="f", idx_base=0)
    run.create("t_splits", "final_splits")
    assert rows(run, "SELECT dataset, split, image_key, coco_id, source FROM "
                     "(SELECT *, 'karpathy' AS source FROM t_splits)") == [
        ("coco", "test", "coco_391895", 391895, "karpathy")]
    assert run.query("out_splits", source="karpathy") == [("coco", "test", "coco_391895", 391895, None, "karpathy")]


def test_web_tsv_rows_line_numbers_survive_rejected_lines(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "cc3m.tsv"
    p.write_bytes(b'a "dog\thttp://a/0.jpg\n'          # line 1, unbalanced quote
                  b"bad \xff bytes\thttp://a/1.jpg\n"     # line 2, not UTF-8 -> rejected
                  b"no tab here\n"                       # line 3, one column -> rejected
                  b"a cat\thttp://a/3.jpg\n")             # line 4
    run.create("csv_acc", "web_tsv_read", path=p)
    run.con.register("line_faults", LineFaults(p).table())  # no line replaced before the read
    run.create("csv_gaps", "csv_gaps", header_lines=0)
    run.create("web_rows", "web_tsv_rows", layout="caption_url")
    assert rows(run, "SELECT line, caption, url FROM web_rows ORDER BY line") == [
        (1, 'a "dog', "http://a/0.jpg"), (4, "a cat", "http://a/3.jpg")]
    run.insert("cand_rejects", "csv_rejects", file="cc3m.tsv", entities=["images", "captions"])
    assert rows(run, "SELECT entity, locator, reason FROM cand_rejects ORDER BY ALL") == [
        ("captions", "line 2", "invalid_utf8"), ("captions", "line 3", "wrong_column_count"),
        ("images", "line 2", "invalid_utf8"), ("images", "line 3", "wrong_column_count")]


def test_web_tsv_rows_url_caption_layout(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "cc12m.tsv"
    p.write_text("http://a/0.jpg\t<PERSON> on a bike\n")
    run.create("csv_acc", "web_tsv_read", path=p)
    run.create("csv_gaps", "csv_gaps", header_lines=0)
    run.create("web_rows", "web_tsv_rows", layout="url_caption")
    assert rows(run, "SELECT line, caption, url FROM web_rows") == [(1, "<PERSON> on a bike", "http://a/0.jpg")]


def test_sbu_rows_zip_parallel_lists(run: SqlRunner, tmp_path: Path) -> None:
    p = tmp_path / "sbu.json"
    p.write_text(json.dumps({"image_urls": ["http://a/0.jpg", "http://a/1.jpg"], "captions": ["c0", "c1"],
                             "user_ids": ["u", "v"]}))
    run.create("web_rows", "sbu_rows", path=p, max_object_size=10_000)
    assert rows(run, "SELECT line, caption, url, n_urls, n_captions FROM web_rows ORDER BY 1") == [
        (1, "c0", "http://a/0.jpg", 2, 2), (2, "c1", "http://a/1.jpg", 2, 2)]


def _img2dataset_parquet(path: Path) -> None:
    con = duckdb.connect()
    con.execute("""COPY (SELECT * FROM (VALUES
        ('000000000', 'http://a/0.jpg', 'c0', 'success', NULL, 256, 192, 640, 480, NULL, 'aa'),
        ('000000001', 'http://a/1.jpg', 'c1', 'failed_to_download', 'HTTP Error 404', NULL, NULL, NULL, NULL, NULL, NULL),
        ('000000002', 'http://a/0.jpg', 'c2', 'failed_to_download', 'dup', NULL, NULL, NULL, NULL, NULL, NULL))
        AS t(key, url, caption, status, error_message, width, height, original_width, original_height, exif, sha256))
        TO $p (FORMAT parquet)""", {"p": str(path)})
    con.close()


def test_web_downloads_and_images(run: SqlRunner, tmp_path: Path) -> None:
    (tmp_path / "cc3m" / "images").mkdir(parents=True)
    pq = tmp_path / "cc3m" / "images" / "00000.parquet"
    _img2dataset_parquet(pq)
    run.create("web_downloads", "web_downloads", files=[str(pq)], raw_root=str(tmp_path))
    assert rows(run, "SELECT url, key, status, tar_path FROM web_downloads ORDER BY 1") == [
        ("http://a/0.jpg", "000000000", "success", "cc3m/images/00000.tar"),
        ("http://a/1.jpg", "000000001", "failed_to_download", "cc3m/images/00000.tar")]
    run.con.execute("CREATE TABLE web_rows AS SELECT *, CAST(NULL AS VARCHAR) AS type_reason FROM (VALUES "
                    "(1, 'c0', 'http://a/0.jpg'), (2, 'c1', 'http://a/1.jpg'), (3, 'c2', 'ftp://a/2.jpg'), "
                    "(4, 'c3', 'http://a/9.jpg'), (5, 'c4', 'http://a/0.jpg')) AS t(line, caption, url)")
    run.insert("cand_images", "web_images", source="cc3m", split="train", file="t.tsv", locator_prefix="line ")
    assert rows(run, "SELECT image_key, tar_key, width, sha256, locator, reason FROM cand_images ORDER BY ord") == [
        ("cc3m_0", "000000000", "256", "aa", "line 1", None),
        ("cc3m_1", "000000001", None, None, "line 2", "failed_to_download"),
        ("cc3m_2", None, None, None, "line 3", "invalid_url"),
        ("cc3m_3", None, None, None, "line 4", "not_downloaded"),
        ("cc3m_4", "000000000", "256", "aa", "line 5", "duplicate_url")]
    run.insert("cand_captions", "web_captions", source="cc3m", split="train", file="t.tsv", locator_prefix="line ")
    assert rows(run, "SELECT image_key, caption_id, caption FROM cand_captions ORDER BY ord LIMIT 1") == [
        ("cc3m_0", "0", "c0")]


def test_empty_web_downloads_and_vg_attributes(run: SqlRunner) -> None:
    assert run.create("web_downloads", "empty_web_downloads") == 0
    assert run.create("vg_attributes", "empty_vg_attributes") == 0


def test_openimages_boxes_by_header_name(run: SqlRunner, tmp_path: Path) -> None:
    (tmp_path / "classes.csv").write_text('/m/01g317,Person\n/m/011k07,"Tortoise, giant"\n')
    run.con.register("oi_class_lines", read_class_lines(tmp_path / "classes.csv", "classes.csv"))
    run.create("oi_classes", "oi_classes")
    assert rows(run, "SELECT * FROM oi_classes ORDER BY 1") == [("/m/011k07", "Tortoise, giant"),
                                                               ("/m/01g317", "Person")]
    # columns reordered on purpose: selected by header name
    (tmp_path / "boxes.csv").write_bytes(
        b"XMin,ImageID,Source,LabelName,Confidence,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        b"0.0125,000002b66c9c498e,xclick,/m/01g317,1,0.195312,0.148438,0.5875,0,1,0,0,0\n"
        b"0.1,000002b66c9c498e,xclick\n"
        b"0.2,00000c4d5e6f7a8b,xclick,/m/0zzz,1,0.3,0.1,0.2,1,0,1,0,0\n")
    run.create("csv_acc", "oi_boxes_read", path=tmp_path / "boxes.csv")
    run.con.register("line_faults", LineFaults(tmp_path / "boxes.csv").table())
    run.create("csv_gaps", "csv_gaps", header_lines=1)
    run.insert("cand_boxes", "oi_boxes", file="b.csv", source="openimages")
    assert rows(run, "SELECT image_key, box_id, c0, c1, c2, c3, coords, label, is_group, flags, locator, reason "
                     "FROM cand_boxes ORDER BY ord") == [
        ("oi_000002b66c9c498e", "000002b66c9c498e#2", "0.0125", "0.195312", "0.148438", "0.5875", "xxyy_norm",
         "Person", "0", ["truncated"], "line 2", None),
        ("oi_00000c4d5e6f7a8b", "00000c4d5e6f7a8b#4", "0.2", "0.3", "0.1", "0.2", "xxyy_norm", None, "1",
         ["occluded"], "line 4", "unknown_label")]
    run.insert("cand_rejects", "csv_rejects", file="b.csv", entities=["objects"])
    assert rows(run, "SELECT entity, locator, reason FROM cand_rejects") == [("objects", "line 3",
                                                                             "wrong_column_count")]
    run.create("oi_sizes", "oi_sizes_none")
    run.insert("cand_images", "oi_images", source="openimages", split="train", file="b.csv",
               image_dir="openimages/train")
    assert rows(run, "SELECT image_key, path, width FROM cand_images ORDER BY 1") == [
        ("oi_000002b66c9c498e", "openimages/train/000002b66c9c498e.jpg", None),
        ("oi_00000c4d5e6f7a8b", "openimages/train/00000c4d5e6f7a8b.jpg", None)]
    # with a size index (openimages.image_sizes): a repeated ImageID keeps its first line; text as written
    (tmp_path / "sizes.csv").write_text("ImageID,Width,Height\n000002b66c9c498e,1024,768\n"
                                        "000002b66c9c498e,1,1\nffff000011112222,640,480\nbad!,1,1\n"
                                        "ffff000011113333,640.0,480\n000002b66c9c498e,1024,768\n")
    run.con.execute("DROP TABLE reject_errors")  # the box file's (store_rejects appends to it)
    run.create("csv_acc", "oi_sizes_read", path=tmp_path / "sizes.csv")
    run.create("csv_gaps", "csv_gaps", header_lines=1)
    run.create("oi_size_lines", "oi_size_lines")
    assert rows(run, "SELECT line, image_id, reason FROM oi_size_lines ORDER BY line") == [
        (2, "000002b66c9c498e", None), (3, "000002b66c9c498e", "duplicate_id"), (4, "ffff000011112222", None),
        (5, "bad!", "invalid_id"), (6, "ffff000011113333", "invalid_number"), (7, "000002b66c9c498e", "duplicate_id")]
    assert run.create("oi_sizes", "oi_sizes") == 2
    run.con.execute("DELETE FROM cand_images")
    run.insert("cand_images", "oi_images", source="openimages", split="train", file="b.csv",
               image_dir="openimages/train")
    assert rows(run, "SELECT image_key, width, height FROM cand_images ORDER BY 1") == [
        ("oi_000002b66c9c498e", "1024", "768"), ("oi_00000c4d5e6f7a8b", None, None)]


# ------------------------------------------------------------------ outputs and stats


def test_outputs_quarantine_and_stats(run: SqlRunner, tmp_path: Path) -> None:
    put(run, "cand_images", [_img("t_1"), _img("t_2", reason="failed_to_download")])
    put(run, "cand_captions", [{"image_key": "t_1", "source": "t", "caption_id": "1", "caption": "a dog",
                                "file": "f", "locator": "c1", "ord": 0},
                               {"image_key": "t_2", "source": "t", "caption_id": "2", "caption": "a cat",
                                "file": "f", "locator": "c2", "ord": 1}])
    put(run, "cand_boxes", [_box("1", ("1", "1", "2", "2")), {**_box("2", ("1", "1", "2", "2")),
                                                              "entity": "objects", "label": "dog"}])
    put(run, "cand_rejects", [{"entity": "images", "file": "f", "locator": "line 9", "reason": "invalid_utf8",
                               "raw": "x"}])
    run.create("t_images", "final_images", check_files=False)
    run.create("t_captions", "final_captions")
    run.create("t_boxes", "final_boxes", min_kept_fraction=0.5)
    run.create("t_splits", "final_splits")
    assert run.query("images_to_check") == []  # no path on these rows
    assert sorted(r[0] for r in run.query("out_images")) == ["t_1"]
    assert run.query("out_captions") == [("t_1", "t", "train", "1", "a dog")]
    assert run.query("out_regions") == [("t_1", "t", 1, 1.0, 1.0, 2.0, 2.0, "a dog", False)]
    assert run.query("out_objects") == [("t_1", "t", "2", 1.0, 1.0, 2.0, 2.0, "dog", None, False, [], False)]
    assert run.query("out_splits", source="t") == []
    assert sorted(r[:5] for r in run.query("out_quarantine", source="t")) == [
        ("t", "captions", "f", "c2", "image_not_loaded"), ("t", "images", "f", "line 9", "invalid_utf8"),
        ("t", "images", "f", "t_2", "failed_to_download")]
    assert run.query("stats_rows_in") == [("f", "captions", 2), ("f", "images", 3), ("f", "objects", 1),
                                          ("f", "regions", 1)]
    assert run.query("stats_outcomes") == [
        ("f", "captions", None, 1, 0), ("f", "captions", "image_not_loaded", 1, 0), ("f", "images", None, 1, 0),
        ("f", "images", "failed_to_download", 1, 0), ("f", "images", "invalid_utf8", 1, 0),
        ("f", "objects", None, 1, 0), ("f", "regions", None, 1, 0)]
    out = tmp_path / "x.parquet"
    run.copy_parquet("out_images", out)
    assert run.con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(out)}).fetchall() == [(1,)]
