"""The fused single pass for Visual Genome regions: ONE parse feeds the regions file and the quarantine.

Why: the generic path (:mod:`xvlm.data.lake.ingest`) stages every candidate row, applies the box rule in
a second pass and writes the lake partition in a third; for VG's 5.4M regions those passes cost far
more than parsing itself (``bench/RESULTS.md``). Here DuckDB parses the file once with the box rule
fused in (``vg_regions_fused.sql`` under ``fused_regions_stream.sql``) and streams the rows as Arrow
batches; this module splits each batch while the parse goes on: loaded rows are written straight to the
final Parquet file (pyarrow), the (few) quarantined rows are kept, rows and ids are counted. A single
``COPY`` has one output, so it needed a second full parse for the counts and the quarantine.

The parse (DuckDB, one thread for one JSON array) runs in a helper thread, the split and the Parquet
writer in the calling one; both release the GIL, so on two cores they overlap. With ``threads`` > 1 a
big file is cut into that many byte ranges at element boundaries (:mod:`xvlm.data.lake.ranges`: range
files, and why a wrong cut cannot go unnoticed), each parsed on its own cursor and thread into the same
writer; quarantine locators are shifted by the preceding ranges' element counts, ids must increase
across ranges too, and a range that does not parse sends the file back to one parse. Duplicate ids are the
one rule that needs every row at once: when the ids do not come strictly increasing (the usual VG
order, checked on the stream) they are counted on the written file, and if any id could repeat the
file is dropped and the source takes the generic path, so the lake is identical either way
(``tests/data/test_lake_fused.py``).
"""

from __future__ import annotations

import queue
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xvlm.data.lake.config import IngestConfig, LakeInputError, VgPaths
from xvlm.data.lake.ranges import element_ranges, remove, write_range
from xvlm.data.lake.sqlrun import SqlRunner

# The columns of the lake table `regions` (out_regions.sql), the first ones of fused_regions_stream.sql.
REGION_COLUMNS = ("image_key", "source", "region_id", "x", "y", "w", "h", "phrase", "clipped")
# Rows per streamed batch (one Parquet row group each, like DuckDB's own 122,880) and batches parsed
# ahead of the writer: bounds the memory held between the two threads (~10 MB per batch).
_BATCH_ROWS = 1 << 17
_AHEAD = 4
_END = object()
# Smaller region files are parsed whole: the split, its range files and threads cost more than they save.
_MIN_SPLIT_BYTES = 64 << 20


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
    first_id: int | None = None
    last_id: int | None = None

    def see_ids(self, region_id: pa.Array) -> None:
        """Track ``ids_increasing`` over one batch's ``region_id`` column (vectorised, ~1 ms per batch)."""
        if not self.ids_increasing:
            return
        ids = region_id.drop_null()
        if len(ids) == 0:
            return
        if self.first_id is None:
            self.first_id = ids[0].as_py()
        if self.last_id is not None and ids[0].as_py() <= self.last_id or len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            self.ids_increasing = False
        self.last_id = ids[-1].as_py()

    @staticmethod
    def chain(parts: list[_Split]) -> _Split:
        """The counts of streams read one after another (file order): ids increase across them only if
        each part's ids do and the last id of a part is below the first id of the next part with ids."""
        out = _Split()
        for s in parts:
            out.rows_in += s.rows_in
            out.n_ids += s.n_ids
            out.n_int_ids += s.n_int_ids
            out.ids_increasing = out.ids_increasing and s.ids_increasing
            if s.first_id is not None:
                if out.last_id is not None and s.first_id <= out.last_id:
                    out.ids_increasing = False
                out.first_id = s.first_id if out.first_id is None else out.first_id
                out.last_id = s.last_id
        return out


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless the consumer has stopped (then the producer must not block forever)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _pump(k: int, batches: Iterator[pa.RecordBatch], q: queue.Queue, stop: threading.Event) -> None:
    """Producer ``k``: pull batches from DuckDB (the parse runs here) until done, failed or stopped."""
    try:
        for b in batches:
            if not _put(q, (k, b), stop):
                return
        _put(q, (k, _END), stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
        _put(q, (k, exc), stop)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _split_streams(schema: pa.Schema, streams: list[Iterator[pa.RecordBatch]], out_path: Path,
                   quarantined: list[list[pa.RecordBatch]]) -> list[_Split]:
    """Write the loaded rows of every stream to ``out_path`` (one file, batches in arrival order), append
    stream k's quarantined rows to ``quarantined[k]``, count rows and ids per stream.

    Each stream is pulled by its own thread (one parse per range of the file); the single writer here
    keeps the partition one file, which every reader of the lake expects (``part-0.parquet``)."""
    counts = [_Split() for _ in streams]
    q: queue.Queue = queue.Queue(maxsize=_AHEAD * len(streams))
    stop = threading.Event()
    writer = pq.ParquetWriter(out_path, pa.schema([schema.field(c) for c in REGION_COLUMNS]),
                              compression="zstd")
    try:
        with ThreadPoolExecutor(max_workers=len(streams)) as pool:
            for k, batches in enumerate(streams):
                pool.submit(_pump, k, batches, q, stop)
            try:
                running = len(streams)
                while running:
                    k, b = q.get()
                    if b is _END:
                        running -= 1
                        continue
                    if isinstance(b, BaseException):
                        raise b
                    c = counts[k]
                    c.rows_in += b.num_rows
                    box_id, region_id, reason = b.column("box_id"), b.column("region_id"), b.column("reason")
                    c.n_ids += len(box_id) - box_id.null_count
                    # region_id = TRY_CAST(box_id AS BIGINT): non-NULL only where box_id is an integer
                    c.n_int_ids += len(region_id) - region_id.null_count
                    c.see_ids(region_id)
                    if reason.null_count < len(reason):
                        is_q = pc.is_valid(reason)
                        quarantined[k].append(b.filter(is_q))
                        b = b.filter(pc.invert(is_q))
                    writer.write_batch(b.select(list(REGION_COLUMNS)))
            finally:
                stop.set()  # the pool's exit then waits for the producers, so DuckDB is idle on return
    finally:
        writer.close()
    return counts


def _split_stream(schema: pa.Schema, batches: Iterator[pa.RecordBatch], out_path: Path,
                  quarantined: list[pa.RecordBatch]) -> _Split:
    """:func:`_split_streams` for one stream."""
    return _split_streams(schema, [batches], out_path, [quarantined])[0]


_LOCATOR = re.compile(r"^\[(\d+)\]")


def _end_of_range(t: pa.Table, token: str) -> tuple[pa.Table, int]:
    """Drop the range-end row (box_id == ``token``) from a range's quarantined rows; returns the rest and
    the range's element count (the range-end object's array index, from its locator)."""
    is_end = pc.fill_null(pc.equal(t.column("box_id"), token), False)
    ends = t.filter(is_end).column("locator").to_pylist()
    if len(ends) != 1 or ends[0] is None or not (m := _LOCATOR.match(ends[0])):
        raise AssertionError(f"range-end row not found exactly once ({ends}): a bug in the range split")
    return t.filter(pc.invert(is_end)), int(m.group(1))


def _shift_locators(t: pa.Table, offset: int) -> pa.Table:
    """Locators ``[i].regions[k]`` of a range -> ``[i + offset].regions[k]`` of the whole file."""
    if offset == 0 or t.num_rows == 0:
        return t
    locs = [None if s is None else _LOCATOR.sub(lambda m: f"[{int(m.group(1)) + offset}]", s, count=1)
            for s in t.column("locator").to_pylist()]
    i = t.schema.get_field_index("locator")
    return t.set_column(i, t.schema.field(i), pa.array(locs, t.schema.field(i).type))


def _fused_stream(run: SqlRunner, cfg: IngestConfig, p: VgPaths,
                  path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The fused regions query over ``path`` (the region file or one range file of it) as Arrow batches;
    errors name the configured region file."""
    return run.stream("fused_regions_stream", ctes={"fused_regions": "vg_regions_fused"},
                      file=p.region_descriptions, batch_rows=_BATCH_ROWS, path=path,
                      min_kept_fraction=cfg.min_kept_fraction)


def _parse_ranges(run: SqlRunner, cfg: IngestConfig, p: VgPaths, src: Path, ranges: list[tuple[int, int]],
                  out_path: Path) -> tuple[pa.Schema, _Split, pa.Table]:
    """The fused stream of each byte range (own range file, own cursor, own thread) into ``out_path``.

    Raises :class:`LakeInputError` when a range does not parse: the split was wrong (see
    :mod:`xvlm.data.lake.ranges`) or the file is bad; the caller then parses the file as one range."""
    token = f"xvlm-range-end-{uuid.uuid4().hex}"
    files = [out_path.parent / f"range-{k}.json" for k in range(len(ranges))]
    runners: list[SqlRunner] = []
    run.con.execute("SET threads = 1")  # one DuckDB thread per range: the ranges are the parallelism
    try:
        try:
            with ThreadPoolExecutor(max_workers=len(ranges)) as pool:  # the copies run in the kernel, GIL free
                list(pool.map(lambda job: write_range(src, *job[0], job[1], token),
                              zip(ranges, files, strict=True)))
        except OSError as exc:  # no room for the range files (~ the file's size in LAKE/_tmp), a short read
            raise LakeInputError(src, f"range files not written ({exc}); parsing the file whole") from exc
        streams, schemas = [], []
        for f in files:
            r = run.fork()
            runners.append(r)
            r.con.execute("SET disabled_optimizers = 'build_side_probe_side'")  # see fused_vg_regions
            schema, batches = _fused_stream(r, cfg, p, f)
            schemas.append(schema)
            streams.append(batches)
        if any(s != schemas[0] for s in schemas):
            raise AssertionError(f"range streams differ in schema: {schemas}")
        q_batches: list[list[pa.RecordBatch]] = [[] for _ in ranges]
        counts = _split_streams(schemas[0], streams, out_path, q_batches)
    finally:
        try:
            for r in runners:  # closing a cursor drops its open result and settings
                r.close()
        finally:
            try:
                run.con.execute(f"SET threads = {int(cfg.threads)}")
            finally:
                remove(files)
    tables, offset = [], 0
    for c, qb in zip(counts, q_batches, strict=True):
        t, n_elements = _end_of_range(pa.Table.from_batches(qb, schemas[0]), token)
        c.rows_in -= 1  # the range-end row: one row, one (non-integer) box id
        c.n_ids -= 1
        tables.append(_shift_locators(t, offset))
        offset += n_elements
    return schemas[0], _Split.chain(counts), pa.concat_tables(tables)


def _parse_whole(run: SqlRunner, cfg: IngestConfig, p: VgPaths, src: Path,
                 out_path: Path) -> tuple[pa.Schema, _Split, pa.Table]:
    """The fused stream of the whole file (one parse) into ``out_path``."""
    q_batches: list[pa.RecordBatch] = []
    schema, batches = _fused_stream(run, cfg, p, src)
    counts = _split_stream(schema, batches, out_path, q_batches)
    return schema, counts, pa.Table.from_batches(q_batches, schema)


def fused_vg_regions(run: SqlRunner, cfg: IngestConfig, p: VgPaths, out_path: Path) -> FusedRegions | None:
    """Write VG's final ``regions`` partition to ``out_path``; quarantined rows go to ``fused_quarantined``.

    Needs ``t_images`` (the box rule joins image sizes). Returns None - and leaves nothing written -
    when a region id could repeat (non-integer or repeated ids): the caller then runs the generic path.
    With ``cfg.threads`` > 1 and a file of at least ``_MIN_SPLIT_BYTES``, the file is parsed as that many
    byte ranges at once (:mod:`xvlm.data.lake.ranges`); a range that does not parse, or range files that
    cannot be written, mean the split is dropped and the file parsed whole, so the result (and any error,
    naming the file) is the same.
    """
    src = cfg.resolve(p.region_descriptions)
    # DuckDB cannot estimate a JSON file's size (it guesses a few dozen rows) and would build the join's
    # hash table on the region file - the whole 0.7 GB - instead of on the images; keep the build side
    # on the images for this statement.
    run.con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        done = None
        ranges = element_ranges(src, cfg.threads) if src.stat().st_size >= _MIN_SPLIT_BYTES else []
        if len(ranges) > 1:
            try:
                done = _parse_ranges(run, cfg, p, src, ranges, out_path)
            except LakeInputError:
                out_path.unlink(missing_ok=True)  # a wrong cut (or a bad file): parse it whole
        if done is None:
            done = _parse_whole(run, cfg, p, src, out_path)
        _, counts, quarantined = done
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    finally:
        run.con.execute("RESET disabled_optimizers")
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
