"""finalize streams one shard at a time: the manifest equals the per-shard parts in shard order; the
tar members go through a temporary Parquet file that is gone afterwards; a missing member fails its audit."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import AuditError, audit_build, finalize, plan_build, shard_paths, write_shards
from xvlm.data.shards import build as build_mod
from xvlm.data.shards.build import LINEAGE_KEY, QUARANTINE_SCHEMA, lineage, read_lineage
from xvlm.data.shards.ustar import UstarWriter
from xvlm.data.shards.writer import MANIFEST_SCHEMA


def _built(planted: tuple[Path, Path], tmp_path: Path, shard_size: int) -> tuple[Path, dict]:
    lake, raw = planted
    out, plan = plan_build(lake, raw, tmp_path, TEST_RECIPE.with_(shard_size=shard_size))
    write_shards(out, plan)
    return out, plan


def test_streamed_manifest_equals_the_parts(planted: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out, plan = _built(planted, tmp_path, 2)
    assert plan["n_shards"] == 3
    monkeypatch.setattr(build_mod, "_ROWS_PER_GROUP", 3)  # row groups flushed mid-stream, and a rest
    totals = finalize(out, plan)
    parts = [pq.read_table(shard_paths(out, "t", i)["manifest"]) for i in range(3)]
    man = pq.read_table(out / "manifest.parquet")
    assert man.schema.remove_metadata() == MANIFEST_SCHEMA
    assert man.to_pylist() == pa.concat_tables(parts).to_pylist()  # same rows, same order
    assert [r["key"] for r in man.to_pylist()] == ["cc3m_1", "cc3m_2", "coco_1", "coco_5", "vg_13"]
    assert [pq.ParquetFile(out / "manifest.parquet").metadata.row_group(g).num_rows for g in range(2)] == [4, 1]
    assert read_lineage(out / "manifest.parquet") == lineage(plan)
    assert pq.read_schema(out / "manifest.parquet").metadata[LINEAGE_KEY.encode()] == json.dumps(
        lineage(plan), sort_keys=True).encode()
    q = pq.read_table(out / "quarantine.parquet")
    assert q.schema.remove_metadata() == QUARANTINE_SCHEMA and q.num_rows == 0
    assert totals["samples_written"] == 5 and totals["quarantined"] == 0 and totals["n_shards"] == 3
    assert totals["tar_bytes"] == sum(shard_paths(out, "t", i)["tar"].stat().st_size for i in range(3))
    assert totals["audit"] == dict.fromkeys(build_mod.AUDITS, 0)
    # the members file and DuckDB's spill files are gone; nothing hidden is left in the build folder
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "audit.json", "dropped_texts.parquet", "manifest.parquet", "quarantine.parquet", "removed.parquet",
        "samples.json", "samples.parquet", "stats.json"]


def test_audit_fails_on_a_missing_member(planted: tuple[Path, Path], tmp_path: Path) -> None:
    out, plan = _built(planted, tmp_path, 3)
    tar = shard_paths(out, "t", 0)["tar"]
    with tarfile.open(tar) as tf:
        members = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]
    dropped = members[-1][0]  # the last sample's .json
    assert dropped.endswith(".json")
    # the same tar without that member: every other offset is unchanged
    with open(tar, "wb", buffering=0) as f:
        tw = UstarWriter(f.fileno())
        for name, data in members[:-1]:
            key, ext = name.rsplit(".", 1)
            tw.add_sample(key, ((ext, data),))
        tw.close()
    with pytest.raises(AuditError, match="audit_manifest_members"):
        finalize(out, plan)
    assert json.loads((out / "stats.json").read_text())["audit"] == {
        **dict.fromkeys(build_mod.AUDITS, 0), "audit_manifest_members": 1}
    res = audit_build(out, plan)
    assert res["audit_manifest_members"] == [[tar.name, dropped, "no such member (or other offset/size)"]]
    assert not (out / build_mod._MEMBERS).exists()


def test_members_file_removed_when_the_audit_fails_to_run(planted: tuple[Path, Path], tmp_path: Path) -> None:
    out, plan = _built(planted, tmp_path, 3)
    shard_paths(out, "t", 1)["tar"].write_bytes(b"not a tar")
    with pytest.raises(tarfile.ReadError):
        audit_build(out, plan)
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_audits_out_of_memory_is_one_resource_limit(planted: tuple[Path, Path], tmp_path: Path) -> None:
    from xvlm.errors import ResourceLimit

    out, plan = _built(planted, tmp_path, 3)
    with pytest.raises(ResourceLimit, match=r"audits of .*: DuckDB ran out of memory at memory_limit 1KB"):
        finalize(out, plan, memory_limit="1KB")
    assert not any(p.name.startswith(".") or p.name.startswith("duckdb_temp") for p in out.iterdir())
