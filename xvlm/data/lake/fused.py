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

    Needs ``t_images`` (the box rule joins image sizes). Returns None - and writes nothing - when a
    region id could repeat (non-integer or repeated ids): the caller then runs the generic path.
    """
    params = {"path": cfg.resolve(p.region_descriptions), "min_kept_fraction": cfg.min_kept_fraction}
    loaded = run.copy_composed("out_regions", out_path, {"t_boxes": "vg_regions_fused"},
                               file=p.region_descriptions, **params)
    run.create("fused_check", "fused_regions_check", file=p.region_descriptions,
               ctes={"fused_regions": "vg_regions_fused"}, **params)
    rows_in, n_ids, n_int, n_non_int = run.con.execute(
        "SELECT rows_in, n_ids, n_distinct_int_ids, n_non_int_ids FROM fused_check").fetchone()
    if n_non_int or n_int != n_ids:
        out_path.unlink(missing_ok=True)
        run.con.execute("DROP TABLE fused_check")
        return None
    return FusedRegions(out_path, int(rows_in), loaded)
