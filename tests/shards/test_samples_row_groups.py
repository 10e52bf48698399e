"""``samples.parquet`` is written shard-sorted in small row groups, so a shard task's ``shard =`` filter
skips the other shards' row groups by their statistics instead of reading ~123K-row groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from xvlm.data.lake.sqlrun import SqlRunner
from xvlm.data.shards.samples import ROW_GROUP_ROWS, _atomic_copy


def test_samples_parquet_is_shard_sorted_in_small_row_groups(tmp_path: Path) -> None:
    run = SqlRunner.open(threads=2)
    try:  # 5 shards x 3,000 rows, inserted in hash order (not by shard)
        run.con.execute("CREATE TABLE samples AS SELECT (hash(i) % 5)::INTEGER AS shard, "
                        "printf('k%06d', i) AS image_key FROM range(15000) t(i)")
        _atomic_copy(run, "samples", tmp_path / "samples.parquet")
    finally:
        run.close()
    meta = pq.ParquetFile(tmp_path / "samples.parquet").metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    assert sum(g.num_rows for g in groups) == 15000
    assert all(g.num_rows <= ROW_GROUP_ROWS for g in groups)
    spans = [(g.column(0).statistics.min, g.column(0).statistics.max) for g in groups]
    assert spans == sorted(spans) and all(hi - lo <= 1 for lo, hi in spans)  # sorted; a group spans <= 2 shards
    # the filter a shard task uses touches only the groups that hold that shard
    touching = [i for i, (lo, hi) in enumerate(spans) if lo <= 2 <= hi]
    assert len(touching) <= 3000 // ROW_GROUP_ROWS + 2
    t = pq.read_table(tmp_path / "samples.parquet", filters=[("shard", "=", 2)])
    keys = t.column("image_key").to_pylist()
    assert set(t.column("shard").to_pylist()) == {2} and len(keys) > 0 and keys == sorted(keys)
