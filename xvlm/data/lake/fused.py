"""The fused single pass for Visual Genome regions: ONE parse feeds the regions file and the quarantine.

Why: the generic path (:mod:`xvlm.data.lake.ingest`) stages every candidate row, applies the box rule in
a second pass and writes the lake partition in a third; for VG's 5.4M regions those passes cost far
more than parsing itself (``bench/RESULTS.md``). Here DuckDB parses the file once with the box rule
fused in (``vg_regions_fused.sql`` under ``fused_regions_stream.sql``) and streams the rows as Arrow
batches; this module splits each batch while the parse goes on: loaded rows are written straight to the
final Parquet file (pyarrow), the (few) quarantined rows are kept, rows and ids are counted. A single
``COPY`` has one output, so it needed a second full parse for the counts and the quarantine.

The parse (DuckDB, one thread for one JSON array) runs in a helper thread, the split and the Parquet
writer in the calling one; both release the GIL, so on two cores they overlap. Duplicate ids are the
one rule that needs every row at once: when the ids do not come strictly increasing (the usual VG
order, checked on the stream) they are counted on the written file, and if any id could repeat the
file is dropped and the source takes the generic path, so the lake is identical either way
(``tests/data/test_lake_fused.py``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xvlm.data.lake.config import IngestConfig, VgPaths
from xvlm.data.lake.sqlrun import SqlRunner

# The columns of the lake table `regions` (out_regions.sql), the first ones of fused_regions_stream.sql.
REGION_COLUMNS = ("image_key", "source", "region_id", "x", "y", "w", "h", "phrase", "clipped")
# Rows per streamed batch (one Parquet row group each, like DuckDB's own 122,880) and batches parsed
# ahead of the writer: bounds the memory held between the two threads (~10 MB per batch).
_BATCH_ROWS = 1 << 17
_AHEAD = 4
_END = object()


@dataclass(frozen=True)
class FusedRegions:
    """A regions partition already written by the fused pass, and its counts for the stats.

    ``quarantined`` is registered on the runner's connection as ``fused_quarantined`` (read by
    ``fused_quarantine.sql``); ``rows_in`` is counted on the stream, ``loaded`` read back from the file.
    """

    path: Path
    rows_in: int
    loaded: int
    quarantined: pa.Table


@dataclass
class _Split:
    rows_in: int = 0
    n_ids: int = 0
    n_int_ids: int = 0
    # True while the non-NULL region ids seen so far are strictly increasing in stream order (then no
    # two are equal, and the check on the written file is not needed); VG files list them in order.
    ids_increasing: bool = True
    last_id: int | None = None

    def see_ids(self, region_id: pa.Array) -> None:
        """Track ``ids_increasing`` over one batch's ``region_id`` column (vectorised, ~1 ms per batch)."""
        if not self.ids_increasing:
            return
        ids = region_id.drop_null()
        if len(ids) == 0:
            return
        if self.last_id is not None and ids[0].as_py() <= self.last_id:
            self.ids_increasing = False
        elif len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            self.ids_increasing = False
        self.last_id = ids[-1].as_py()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless the consumer has stopped (then the producer must not block forever)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _pump(batches: Iterator[pa.RecordBatch], q: queue.Queue, stop: threading.Event) -> None:
    """Producer: pull batches from DuckDB (the parse runs here) until done, failed or stopped."""
    try:
        for b in batches:
            if not _put(q, b, stop):
                return
        _put(q, _END, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
        _put(q, exc, stop)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _split_stream(schema: pa.Schema, batches: Iterator[pa.RecordBatch], out_path: Path,
                  quarantined: list[pa.RecordBatch]) -> _Split:
    """Write the loaded rows of ``batches`` to ``out_path``, append the quarantined ones, count rows and ids."""
    counts = _Split()
    q: queue.Queue = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()
    writer = pq.ParquetWriter(out_path, pa.schema([schema.field(c) for c in REGION_COLUMNS]),
                              compression="zstd")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_pump, batches, q, stop)
            try:
                while (b := q.get()) is not _END:
                    if isinstance(b, BaseException):
                        raise b
                    counts.rows_in += b.num_rows
                    box_id, region_id, reason = b.column("box_id"), b.column("region_id"), b.column("reason")
                    counts.n_ids += len(box_id) - box_id.null_count
                    # region_id = TRY_CAST(box_id AS BIGINT): non-NULL only where box_id is an integer
                    counts.n_int_ids += len(region_id) - region_id.null_count
                    counts.see_ids(region_id)
                    if reason.null_count < len(reason):
                        is_q = pc.is_valid(reason)
                        quarantined.append(b.filter(is_q))
                        b = b.filter(pc.invert(is_q))
                    writer.write_batch(b.select(list(REGION_COLUMNS)))
            finally:
                stop.set()  # the pool's exit then waits for the producer, so DuckDB is idle on return
    finally:
        writer.close()
    return counts


def fused_vg_regions(run: SqlRunner, cfg: IngestConfig, p: VgPaths, out_path: Path) -> FusedRegions | None:
    """Write VG's final ``regions`` partition to ``out_path``; quarantined rows go to ``fused_quarantined``.

    Needs ``t_images`` (the box rule joins image sizes). Returns None - and leaves nothing written -
    when a region id could repeat (non-integer or repeated ids): the caller then runs the generic path.
    """
    params = {"path": cfg.resolve(p.region_descriptions), "min_kept_fraction": cfg.min_kept_fraction}
    # DuckDB cannot estimate a JSON file's size (it guesses a few dozen rows) and would build the join's
    # hash table on the region file - the whole 0.7 GB - instead of on the images; keep the build side
    # on the images for this statement.
    run.con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    q_batches: list[pa.RecordBatch] = []
    try:
        schema, batches = run.stream("fused_regions_stream", ctes={"fused_regions": "vg_regions_fused"},
                                     file=p.region_descriptions, batch_rows=_BATCH_ROWS, **params)
        counts = _split_stream(schema, batches, out_path, q_batches)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    finally:
        run.con.execute("RESET disabled_optimizers")
    quarantined = pa.Table.from_batches(q_batches, schema)
    run.con.register("fused_quarantined", quarantined)
    loaded = pq.read_metadata(out_path).num_rows
    n_non_int = counts.n_ids - counts.n_int_ids
    if n_non_int:
        n, n_distinct = -1, -1
    elif counts.ids_increasing:  # strictly increasing integers: all distinct, nothing to look up
        n = n_distinct = counts.n_int_ids
    else:
        n, n_distinct = run.query("fused_ids_check", regions_path=out_path)[0]
    if n_non_int or not n == n_distinct == counts.n_ids:
        out_path.unlink(missing_ok=True)
        run.con.unregister("fused_quarantined")
        return None
    return FusedRegions(out_path, counts.rows_in, loaded, quarantined)
