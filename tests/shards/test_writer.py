"""Shard writer: byte-identical reruns, manifest offsets, JSON contents, resize, quarantine, resume, audits."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import (
    AuditError,
    audit_build,
    build_shards,
    finalize,
    pending_shards,
    plan_build,
    read_member,
    shard_paths,
    write_shard,
    write_shards,
)


def _files(build: Path) -> dict[str, bytes]:
    names = ["manifest.parquet", "quarantine.parquet", "samples.parquet"]
    names += [f"shards/{p.name}" for p in sorted((build / "shards").iterdir())]
    return {n: (build / n).read_bytes() for n in names}


@pytest.fixture(scope="module")
def build(planted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake, raw = planted
    return Path(build_shards(lake, raw, tmp_path_factory.mktemp("b1"), TEST_RECIPE)["out"])


def test_two_builds_byte_identical(planted: tuple[Path, Path], build: Path, tmp_path: Path) -> None:
    lake, raw = planted
    other = Path(build_shards(lake, raw, tmp_path, TEST_RECIPE)["out"])
    assert other.name == build.name  # same recipe + lake -> same build id
    a, b = _files(build), _files(other)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_tar_members_and_manifest_offsets(build: Path) -> None:
    man = pq.read_table(build / "manifest.parquet").to_pylist()
    assert sorted(r["key"] for r in man) == ["cc3m_1", "cc3m_2", "coco_1", "coco_5", "vg_13"]
    for r in man:
        tar = build / "shards" / r["tar"]
        jpg = read_member(tar, r["jpg_offset"], r["jpg_size"])
        assert hashlib.sha256(jpg).hexdigest() == r["sha256"]
        doc = json.loads(read_member(tar, r["json_offset"], r["json_size"]))
        assert doc["key"] == r["key"] and len(doc["captions"]) == r["n_captions"]
        assert Image.open(io.BytesIO(jpg)).size == (doc["width"], doc["height"])
    with tarfile.open(build / "shards" / "t-000000.tar") as tf:
        names = tf.getnames()
        assert names == sorted(names) and all(n.endswith((".jpg", ".json")) for n in names)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tf.getmembers()} == {(0, 0, 0, "", "", 0o444)}


def test_stats_tar_digest_matches_the_file(build: Path) -> None:
    from xvlm.data.shards.ustar import tar_digest

    for stats_file in sorted((build / "shards").glob("t-*.stats.json")):
        stats = json.loads(stats_file.read_text())
        tar = build / "shards" / stats["tar"]
        assert stats["tar_digest"] == tar_digest(tar) and stats["tar_bytes"] == tar.stat().st_size


def test_json_of_merged_sample(build: Path) -> None:
    man = {r["key"]: r for r in pq.read_table(build / "manifest.parquet").to_pylist()}
    r = man["coco_1"]
    doc = json.loads(read_member(build / "shards" / r["tar"], r["json_offset"], r["json_size"]))
    assert doc == {
        "key": "coco_1", "source": "coco", "sources": ["coco", "vg"], "captions": ["A dog."], "coco_id": 1,
        "width": 100, "height": 80, "merged_keys": ["vg_10"],
        "concepts": [
            {"kind": "object", "text": "dog", "attributes": [], "box": [10.0, 20.0, 30.0, 40.0], "source": "coco"},
            {"kind": "region", "text": "a dog on grass", "attributes": [], "box": [0.0, 0.0, 100.0, 80.0],
             "source": "vg"},
            {"kind": "object", "text": "dog", "attributes": ["brown", "small"], "box": [10.0, 20.0, 30.0, 40.0],
             "source": "vg"}]}
    # original bytes by default: the stored jpg is the COCO file itself
    assert r["sha256"] == hashlib.sha256(
        (Path(json.loads((build / "samples.json").read_text())["raw_root"])
         / "coco/train2017/000000000001.jpg").read_bytes()).hexdigest()


def test_resize_mode_scales_boxes(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out = Path(build_shards(lake, raw, tmp_path, TEST_RECIPE.with_(resize_max_side=50))["out"])
    man = {r["key"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    r = man["coco_1"]
    assert (r["width"], r["height"]) == (50, 40)
    tar = out / "shards" / r["tar"]
    assert Image.open(io.BytesIO(read_member(tar, r["jpg_offset"], r["jpg_size"]))).size == (50, 40)
    doc = json.loads(read_member(tar, r["json_offset"], r["json_size"]))
    assert [c["box"] for c in doc["concepts"]] == [[5.0, 10.0, 15.0, 20.0], [0.0, 0.0, 50.0, 40.0],
                                                    [5.0, 10.0, 15.0, 20.0]]
    assert man["coco_5"]["width"] == 50 and man["vg_13"]["width"] == 50  # longer side capped


def test_image_gone_after_plan_is_quarantined(planted_rw: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted_rw
    out, plan = plan_build(lake, raw, tmp_path, TEST_RECIPE)
    (raw / "coco/train2017/000000000005.jpg").unlink()
    (raw / "vg/VG_100K/13.jpg").write_bytes((raw / "vg/VG_100K/11.jpg").read_bytes())
    write_shards(out, plan)
    totals = finalize(out, plan)  # audits still pass: quarantined samples are accounted for
    assert totals["samples_written"] == 3 and totals["quarantined"] == 2
    q = {r["key"]: r["reason"] for r in pq.read_table(out / "quarantine.parquet").to_pylist()}
    assert q == {"coco_5": "missing_image", "vg_13": "changed_since_probe"}
    assert "coco_5" not in {r["key"] for r in pq.read_table(out / "manifest.parquet").to_pylist()}


def test_resume_redoes_only_unfinished(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out, plan = plan_build(lake, raw, tmp_path, TEST_RECIPE)
    write_shard(out, 0, plan)
    assert pending_shards(out, plan) == [1]
    p0 = shard_paths(out, "t", 0)
    before = p0["tar"].stat().st_mtime_ns
    write_shards(out, plan)
    assert pending_shards(out, plan) == [] and p0["tar"].stat().st_mtime_ns == before
    # a shard whose stats file is missing counts as unfinished and is rewritten, identically
    data = p0["tar"].read_bytes()
    p0["stats"].unlink()
    assert pending_shards(out, plan) == [0]
    write_shards(out, plan)
    assert p0["tar"].read_bytes() == data


def test_finalize_refuses_unfinished(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out, plan = plan_build(lake, raw, tmp_path, TEST_RECIPE)
    write_shard(out, 0, plan)
    with pytest.raises(RuntimeError, match=r"shards \[1\] are not finished"):
        finalize(out, plan)


def test_audits_find_planted_faults(planted_rw: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted_rw
    out, plan = plan_build(lake, raw, tmp_path, TEST_RECIPE)
    write_shards(out, plan)
    assert finalize(out, plan)["audit"] == dict.fromkeys(
        ["audit_boxes_inside", "audit_no_leak", "audit_unique_keys", "audit_manifest_members"], 0)
    # 1. a manifest row pointing at the wrong offset; 2. a box leaving its image; 3. a key twice
    man = pq.read_table(out / "manifest.parquet")
    off = man.column("jpg_offset").to_pylist()
    off[0] += 1
    man = man.set_column(man.schema.get_field_index("jpg_offset"), "jpg_offset", pa.array(off, pa.int64()))
    pq.write_table(pa.concat_tables([man, man.slice(1, 1)]), out / "manifest.parquet")
    s = pq.read_table(out / "samples.parquet").to_pylist()
    for r in s:
        if r["image_key"] == "vg_13":
            r["concepts"][0]["w"] = 500.0
    pq.write_table(pa.Table.from_pylist(s, schema=pq.read_schema(out / "samples.parquet")), out / "samples.parquet")
    # 4. a sample becomes a leak: vg_13 enters the flickr30k test split
    sp = lake / "splits/source=karpathy/part-0.parquet"
    t = pq.read_table(sp)
    pq.write_table(pa.concat_tables([t, pa.Table.from_pylist([{"dataset": "flickr30k", "split": "test",
        "image_key": "vg_13", "coco_id": None, "flickr_id": None, "source": "karpathy"}], schema=t.schema)]), sp)
    res = audit_build(out, plan)
    assert [r[:2] for r in res["audit_no_leak"]] == [["vg_13", "flickr30k/test"]]
    assert [r[0] for r in res["audit_boxes_inside"]] == ["vg_13"]
    dup = man.column("key")[1].as_py()
    assert ["manifest", dup, 2, "duplicate key"] in res["audit_unique_keys"]
    bad = man.column("key")[0].as_py() + ".jpg"
    assert any(r[1] == bad and r[2].startswith("no such member") for r in res["audit_manifest_members"])
    with pytest.raises(AuditError, match="audit_no_leak"):
        finalize(out, plan)


def test_views_into_a_new_lake_db_are_shell_readable(build: Path, tmp_path: Path) -> None:
    """write_shard_views creating lake.duckdb uses connect_lake_db: storage v1.4 (shell), views work."""
    import duckdb

    from xvlm.data.shards import write_shard_views

    db = tmp_path / "lake.duckdb"
    assert "manifest" in write_shard_views(db, build)
    con = duckdb.connect()
    try:
        con.execute("ATTACH $p AS l (READ_ONLY)", {"p": str(db)})
        version = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'l'"
                              ).fetchone()
        n = con.execute("SELECT count(*) FROM l.manifest").fetchone()
    finally:
        con.close()
    assert version is not None and version[0] is not None and version[0].startswith("v1.4"), version
    assert n == (pq.read_table(build / "manifest.parquet").num_rows,) and n[0] == 5
