"""The queries moved out of Python into sql/ files (issue #18 item 5), each on hand-made rows -> exact rows.

Lake checks (sql/lake), the samples step's counts and output order (sql/samples), and the view bodies
with :func:`view_ddl` (sql/views).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xvlm.data.lake.sqlrun import SqlRunner, view_ddl


def _runner(prefix: str, tables: dict[str, pa.Table]) -> SqlRunner:
    run = SqlRunner(duckdb.connect(":memory:"), prefix=prefix)
    for name, t in tables.items():
        run.con.register(f"{name}_arrow", t)
        run.con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow")  # noqa: S608 (test tables)
        run.con.unregister(f"{name}_arrow")
    return run


# ------------------------------------------------------------------ sql/lake


def test_sbu_count_mismatch() -> None:
    run = _runner("lake", {"web_rows": pa.table({"n_urls": [2, 2, 3], "n_captions": [2, 2, 2]})})
    assert run.query("sbu_count_mismatch") == [(3, 2)]
    run.con.execute("DELETE FROM web_rows WHERE n_urls = 3")
    assert run.query("sbu_count_mismatch") == [(None, None)]  # every row pairs up


def test_web_url_check_counts_rows_without_an_http_url() -> None:
    urls = ["http://a/1.jpg", "https://b/2.jpg", None, "a dog on a mat", "ftp://c/3.jpg", "HTTP://d"]
    run = _runner("lake", {"web_rows": pa.table({"url": pa.array(urls, pa.string())})})
    assert run.query("web_url_check") == [(6, 4)]  # the scheme is matched case-sensitively, as before


def test_image_checks_rows_insert_by_name() -> None:
    run = SqlRunner(duckdb.connect(":memory:"))
    run.create("image_checks", "empty_image_checks")
    # columns in another order than the table's: inserted by name
    run.con.register("image_checks_arrow", pa.table({
        "status": ["ok", "missing"], "image_key": ["k1", "k2"],
        "file_height": pa.array([5, None], pa.int32()), "file_width": pa.array([7, None], pa.int32())}))
    run.insert("image_checks", "image_checks_rows")
    assert run.con.execute("SELECT * FROM image_checks ORDER BY image_key").fetchall() == [
        ("k1", "ok", 7, 5), ("k2", "missing", None, None)]


# ------------------------------------------------------------------ sql/samples


@pytest.fixture()
def plan_tables() -> SqlRunner:
    sel = pa.table({"image_key": ["a", "b", "c"], "path": ["z/2.jpg", "y/1.jpg", "z/2.jpg"],
                    "tar_key": [None, None, "m1"], "width": [10, 20, 30], "height": [1, 2, 3]})
    samples = pa.table({"shard": pa.array([1, 0, 1], pa.int32()), "image_key": ["s2", "s3", "s1"],
                        "n_captions": [2, 0, 1], "n_concepts": [1, 3, 0]})
    sample_rows = pa.table({"image_key": ["s1", "s2", "s3", "s4"], "n_captions": [1, 2, 0, 0],
                            "n_concepts": [0, 1, 3, 0]})
    removed = pa.table({"image_key": ["r1", "r2", "r3", "r4"], "source": ["vg", "coco", "vg", "vg"],
                        "reason": ["leak", "leak", "no_text", "leak"]})
    splits = pa.table({"dataset": ["coco", "coco", "coco", "flickr30k"], "split": ["test", "test", "val", "test"],
                       "image_key": ["c1", "c2", "c3", "f1"]})
    lake = {"l_captions": pa.table({"image_key": ["a", "a", "b", "x"]}),
            "l_regions": pa.table({"image_key": ["a", "x"]}),
            "l_objects": pa.table({"image_key": ["c", "c", "b"]})}
    run = _runner("samples", {"sel_images": sel, "samples": samples, "sample_rows": sample_rows,
                              "removed": removed, "l_splits": splits, **lake})
    yield run
    run.close()


def test_probe_rows_in_file_order(plan_tables: SqlRunner) -> None:
    assert plan_tables.query("probe_rows") == [("b", "y/1.jpg", None, 20, 2), ("c", "z/2.jpg", "m1", 30, 3),
                                               ("a", "z/2.jpg", None, 10, 1)]


def test_plan_counts(plan_tables: SqlRunner) -> None:
    run = plan_tables
    assert run.query("sample_count") == [(3,)]  # s4 has no text
    assert sorted(run.query("shard_sizes")) == [(0, 1), (1, 2)]
    assert run.query("kept_texts") == [(3, 4)]
    assert run.query("removed_by_reason") == [("leak", 3), ("no_text", 1)]
    assert run.query("removed_by_source") == [("coco", "leak", 1), ("vg", "leak", 2), ("vg", "no_text", 1)]
    assert run.query("texts_in") == [(3, 4)]  # captions of a, a, b; regions of a + objects of c, c, b
    assert run.query("leak_lists_found", leak_splits=["coco/test", "flickr30k/val"]) == [("coco/test", 2)]


def test_out_samples_is_sorted_by_shard_then_key(plan_tables: SqlRunner, tmp_path: Path) -> None:
    # (the row-group size, bound as $row_group_size: tests/shards/test_samples_row_groups.py)
    plan_tables.copy_parquet("out_samples", tmp_path / "s.parquet", row_group_size=2048)
    t = pq.read_table(tmp_path / "s.parquet")
    assert list(zip(t["shard"].to_pylist(), t["image_key"].to_pylist(), strict=True)) == [
        (0, "s3"), (1, "s1"), (1, "s2")]
    plan_tables.copy_parquet("out_removed", tmp_path / "r.parquet")
    assert sorted(pq.read_table(tmp_path / "r.parquet")["image_key"].to_pylist()) == ["r1", "r2", "r3", "r4"]


# ------------------------------------------------------------------ sql/views and view_ddl


def test_view_ddl_writes_quoted_literals_and_checks_names(tmp_path: Path) -> None:
    d = tmp_path / "it's here"
    d.mkdir()
    for i, cols in enumerate(({"a": [1]}, {"a": [2], "b": ["x"]})):
        pq.write_table(pa.table(cols), d / f"part-{i}.parquet")
    ddl = view_ddl("v", "views/parquet_parts", temp=True, files=str(d / "part-*.parquet"))
    quoted = str(d).replace("'", "''")
    assert ddl == ("CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM read_parquet("  # noqa: S608 (expected text)
                   f"'{quoted}/part-*.parquet', union_by_name = true)")
    con = duckdb.connect()
    con.execute(ddl)
    assert sorted(con.execute("SELECT a, b FROM v").fetchall()) == [(1, None), (2, "x")]
    as_list = view_ddl("w", "views/parquet_file", path=[str(d / "part-0.parquet")])
    assert as_list.endswith(f"read_parquet(['{quoted}/part-0.parquet'])")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        view_ddl("v; DROP TABLE x", "views/parquet_file", path="p")
    with pytest.raises(ValueError, match="binds"):
        view_ddl("v", "views/parquet_file")
    with pytest.raises(TypeError):
        view_ddl("v", "views/parquet_file", path=1)


def test_quarantine_summary_view() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE quarantine AS SELECT * FROM (VALUES ('vg', 'regions', 'zero_area'), "
                "('vg', 'regions', 'zero_area'), ('coco', 'objects', 'outside'), ('vg', 'objects', 'outside')) "
                "AS t(source, entity, reason)")
    con.execute(view_ddl("quarantine_summary", "views/quarantine_summary"))
    assert con.execute("SELECT * FROM quarantine_summary").fetchall() == [
        ("coco", "objects", "outside", 1), ("vg", "objects", "outside", 1), ("vg", "regions", "zero_area", 2)]


def test_sample_caption_and_concept_views(tmp_path: Path) -> None:
    concept = pa.struct([("kind", pa.string()), ("text", pa.string()), ("attributes", pa.list_(pa.string())),
                         ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                         ("source", pa.string())])
    p = tmp_path / "samples.parquet"
    pq.write_table(pa.table({
        "shard": pa.array([0, 1], pa.int32()), "image_key": ["k1", "k2"], "source": ["coco", "vg"],
        "width": [100, 50], "height": [80, 40], "captions": [["a dog", "the dog"], []],
        "concepts": pa.array([[], [{"kind": "object", "text": "ball", "attributes": ["red"], "x": 1.0,
                                    "y": 2.0, "w": 3.0, "h": 4.0, "source": "vg"}]], pa.list_(concept))}), p)
    con = duckdb.connect()
    con.execute(view_ddl("sample_captions", "views/sample_captions", path=p))
    con.execute(view_ddl("sample_concepts", "views/sample_concepts", path=p))
    assert con.execute("SELECT * FROM sample_captions ORDER BY caption_index").fetchall() == [
        (0, "k1", "coco", "a dog", 1), (0, "k1", "coco", "the dog", 2)]
    assert con.execute("SELECT * FROM sample_concepts").fetchall() == [
        (1, "k2", 50, 40, "object", "ball", ["red"], 1.0, 2.0, 3.0, 4.0, "vg")]


def test_lake_views_record_round_trip_and_row_count(tmp_path: Path) -> None:
    run = SqlRunner(duckdb.connect(), prefix="views")
    ddl = ["CREATE VIEW b AS SELECT 2", "CREATE VIEW a AS SELECT 1", "CREATE VIEW c AS SELECT 3"]
    assert run.create("_lake_views", "lake_views_record", temp=False, ddl=ddl) == 3
    assert [r[0] for r in run.query("lake_views_ddl")] == ddl  # in the order written
    pq.write_table(pa.table({"a": [1, 2, 3, 4]}), tmp_path / "t.parquet")
    assert run.query("parquet_row_count", path=tmp_path / "t.parquet") == [(4,)]
