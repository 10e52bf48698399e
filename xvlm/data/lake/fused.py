"""The fused single pass for Visual Genome regions: parse + box rule + write in one streamed ``COPY``.

Why: the generic path (:mod:`xvlm.data.lake.ingest`) stages every candidate row, applies the box rule in
a second pass and writes the lake partition in a third; for VG's 5.4M regions those passes cost far
more than parsing itself (``bench/RESULTS.md``). Here ``out_regions.sql`` is run over
``vg_regions_fused.sql`` (parse fused with the box rule) straight into the final Parquet file, and
one more streamed pass (``fused_regions_check.sql``) counts the rows read, collects the (few)
quarantined rows and decides whether a region id could repeat. Duplicate ids are the one rule that
needs every row at once; if any id could repeat, the written file is dropped and the source takes
the generic path, so the lake is identical either way (``tests/data/test_lake_fused.py``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from xvlm.data.lake.config import IngestConfig, VgPaths
from xvlm.data.lake.sqlrun import SqlRunner


@dataclass(frozen=True)
class FusedRegions:
    """A regions partition already written by the fused pass, and its counts for the stats."""

    path: Path
    rows_in: int
    loaded: int


def fused_vg_regions(run: SqlRunner, cfg: IngestConfig, p: VgPaths, out_path: Path) -> FusedRegions | None:
    """Write VG's final ``regions`` partition to ``out_path``; quarantined rows go to table ``fused_check``.

    Needs ``t_images`` (the box rule joins image sizes). Returns None - and leaves nothing written -
    when a region id could repeat (non-integer or repeated ids): the caller then runs the generic path.
    """
    params = {"path": cfg.resolve(p.region_descriptions), "min_kept_fraction": cfg.min_kept_fraction}
    # DuckDB cannot estimate a JSON file's size (it guesses a few dozen rows) and would build the join's
    # hash table on the region file - the whole 0.7 GB - instead of on the images; keep the build side
    # on the images for these two statements.
    run.con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    # DuckDB parses one JSON array on one thread, so the two passes run side by side (two cursors).
    side = run.fork()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            check = pool.submit(side.create, "fused_check", "fused_regions_check", file=p.region_descriptions,
                                ctes={"fused_regions": "vg_regions_fused"}, temp=False, **params)
            try:
                loaded = run.copy_composed("out_regions", out_path, {"t_boxes": "vg_regions_fused"},
                                           file=p.region_descriptions, **params)
            finally:
                check.result()
    finally:
        side.close()
        run.con.execute("RESET disabled_optimizers")
    rows_in, n_ids, n_non_int = run.con.execute(
        "SELECT rows_in, n_ids, n_non_int_ids FROM fused_check").fetchone()
    n, n_distinct = run.query("fused_ids_check", regions_path=out_path)[0] if not n_non_int else (-1, -1)
    if n_non_int or not n == n_distinct == n_ids:
        out_path.unlink(missing_ok=True)
        run.con.execute("DROP TABLE fused_check")
        return None
    return FusedRegions(out_path, int(rows_in), loaded)
