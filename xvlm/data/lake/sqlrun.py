"""Run the ``sql/`` files: load a query by name, bind ``$params``, materialise it or COPY it to Parquet.

Each ``.sql`` file holds exactly ONE query (checked when loaded) and a header comment with its grain
and parameters (``sql/README.md``). Values are always bound as parameters; the only text this module
puts around a query is a table name, which must be a plain identifier chosen by our code (checked),
never user input. The one exception is :func:`view_ddl`: a view is DDL, which DuckDB cannot prepare,
so the file paths a view reads are written into its text as quoted literals there, and nowhere else.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from xvlm.data.lake.config import LakeInputError
from xvlm.errors import ResourceLimit

log = logging.getLogger(__name__)
SQL_ROOT = Path(os.environ.get("XVLM_SQL_DIR", Path(__file__).resolve().parents[3] / "sql"))
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_FILE_IN_ERROR = re.compile(r'file "([^"]+)"|"([^"]+\.(?:json|tsv|csv|parquet))"')
_MACROS = ("macro_json_kind", "macro_json_check", "macro_json_text", "macro_json_num_check", "macro_json_int_check")
_INPUT_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.BinderException,
                 duckdb.IOException)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def limit_bytes(limit: str) -> int:
    """Bytes of a DuckDB size setting such as ``memory_limit``: ``2GB`` (10^9), ``2GiB`` (2^30), ``500MB``."""
    m = _SIZE.match(limit)
    if not m:
        raise ValueError(f"not a DuckDB size: {limit!r} (e.g. 2GB, 512MiB)")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** " KMGT".index(m.group(2).upper() or " "))


def memory_error(exc: BaseException, stage: str, memory_limit: str, temp_dir: Path | None) -> ResourceLimit:
    """DuckDB's OutOfMemoryException as one line naming the stage, its limit and its spill folder."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ResourceLimit(f"{stage}: DuckDB ran out of memory at memory_limit {memory_limit} ({first}); raise "
                         f"memory_limit or free disk for its temporary files in {temp_dir or 'the working folder'}")


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (``name`` like ``lake/vg_regions``); exactly one statement."""
    path = SQL_ROOT / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    n = len(duckdb.extract_statements(text))
    if n != 1:
        raise ValueError(f"{path}: expected exactly one SQL statement, found {n}")
    return text.strip().rstrip(";")


def sql_params(name: str) -> set[str]:
    """The ``$names`` a SQL file binds (comments excluded)."""
    body = "\n".join(line.split("--", 1)[0] for line in load_sql(name).splitlines())
    return set(_PARAM.findall(body))


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _literal(value: Any) -> str:
    """A quoted SQL string literal (quotes doubled), or a list of them, for :func:`view_ddl` only."""
    if isinstance(value, (str, Path)):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"a view can only name strings or lists of strings, not {type(value).__name__}")


def view_ddl(view: str, name: str, temp: bool = False, **params: Any) -> str:
    """``CREATE OR REPLACE [TEMP] VIEW <view> AS <sql/<name>.sql>``, each ``$param`` written as a literal.

    The ONE place where a value becomes SQL text. Why: DuckDB cannot bind parameters in DDL (``CREATE
    VIEW ... read_parquet($p)`` fails with "Unexpected prepared parameter"), and the views over Parquet
    files (lake.duckdb, the samples step's ``l_*`` views, staged tables) must name their files. ``view``
    must be a plain identifier; values are strings/paths or lists of them chosen by our code (file
    paths), quoted by :func:`_literal`. The file's comments are left out of the view's text.
    """
    body = "\n".join(line.split("--", 1)[0].rstrip() for line in load_sql(name).splitlines())
    wanted = sql_params(name)
    if wanted != params.keys():
        raise ValueError(f"sql/{name}.sql binds {sorted(wanted)}, given {sorted(params)}")
    body = _PARAM.sub(lambda m: _literal(params[m.group(1)]), body.strip())
    return f"CREATE OR REPLACE {'TEMP ' if temp else ''}VIEW {_ident(view)} AS {body}"


class SqlRunner:
    """A DuckDB connection plus the ``sql/`` files; one runner per source ingest.

    ``files`` maps a bound parameter to the input file it names, so a DuckDB parse error is re-raised
    as :class:`LakeInputError` naming that file.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str = "lake", stage_dir: Path | None = None) -> None:
        self.con = con
        self.prefix = prefix
        self.stage_dir = stage_dir
        self._staged: dict[str, tuple[Path, list[tuple[str, str]]]] = {}
        # Per input file (as configured): the entities it holds, in order (stats list each, zero rows
        # included), and the files that could not be used as a whole, with why (xvlm.data.lake.sources).
        self.file_entities: dict[str, list[str]] = {}
        self.file_errors: dict[str, str] = {}
        if prefix == "lake":  # the strict-typing macros the lake's JSON queries use
            for m in _MACROS:
                con.execute(load_sql(f"lake/{m}"))

    def mark(self) -> dict[str, int]:
        """The staged tables' part counts now: :meth:`rollback` removes what was added after."""
        return {t: len(list(d.glob("part-*.parquet"))) for t, (d, _) in self._staged.items()}

    def rollback(self, mark: dict[str, int], file: str, tables: tuple[str, ...]) -> None:
        """Undo one input file's rows: staged parts written after ``mark`` and, in the in-memory
        ``tables``, its rows (column ``file``); an unusable file leaves no partial rows behind."""
        for t, (d, _) in self._staged.items():
            parts = sorted(d.glob("part-*.parquet"), key=lambda q: int(q.stem.split("-")[1]))
            for q in parts[mark.get(t, 0):]:
                q.unlink(missing_ok=True)
        for t in tables:
            if t not in self._staged:
                self.con.execute(f"DELETE FROM {_ident(t)} WHERE file = $f", {"f": file})  # noqa: S608

    @classmethod
    def open(cls, memory_limit: str = "2GB", threads: int = 2, temp_dir: Path | None = None,
             stage_dir: Path | None = None) -> SqlRunner:
        con = duckdb.connect(":memory:")
        con.execute("SET memory_limit = $m", {"m": memory_limit})
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        if temp_dir is not None:
            con.execute("SET temp_directory = $t", {"t": str(temp_dir)})
        return cls(con, stage_dir=stage_dir)

    def _full(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _bind(self, name: str, params: dict[str, Any],
              ctes: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
        """The query text and its bound values. ``ctes`` maps a relation name the query reads to another
        ``sql/`` file, run as a CTE of that name (it shadows a table of the same name): two files
        composed into ONE streamed statement, e.g. ``out_regions`` over ``vg_regions_fused``."""
        full = self._full(name)
        sql = load_sql(full)
        wanted = sql_params(full)
        if ctes:
            defs = ", ".join(f"{_ident(t)} AS ({load_sql(self._full(n))})" for t, n in ctes.items())
            sql = f"WITH {defs} SELECT * FROM ({sql})"  # noqa: S608 - file texts and checked identifiers
            for n in ctes.values():
                wanted = wanted | sql_params(self._full(n))
        missing = wanted - params.keys()
        if missing:
            raise ValueError(f"sql/{full}.sql needs parameters {sorted(missing)}")
        return sql, {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items() if k in wanted}

    def _run(self, name: str, wrapper: str, params: dict[str, Any], file: str | Path | None,
             ctes: dict[str, str] | None = None) -> Any:
        if file is not None:
            params = {**params, "file": str(file)}
        sql, bound = self._bind(name, params, ctes)
        if "stage_path" in params:
            bound["stage_path"] = params["stage_path"]
        t0 = time.perf_counter()
        try:
            return self.con.execute(wrapper.replace("{q}", sql), bound)
        except _INPUT_ERRORS as exc:
            raise self._input_error(exc, name, file) from exc
        finally:  # per-query cost, for profiling a stage at scale (bench.scale.measure --sql-log)
            log.debug("sql/%s/%s.sql %.2f s", self.prefix, name, time.perf_counter() - t0)

    def _input_error(self, exc: BaseException, name: str, file: str | Path | None) -> LakeInputError:
        """A DuckDB error about the data as :class:`LakeInputError` naming ``file`` (or the file in the message)."""
        msg = str(exc).split("\n", 1)[0]
        m = _FILE_IN_ERROR.search(str(exc))
        where = file or (m.group(1) or m.group(2) if m else None) or f"sql/{self.prefix}/{name}.sql"
        return LakeInputError(where, f"unusable input ({msg}) [sql/{self.prefix}/{name}.sql]")

    def create(self, table: str, name: str, file: str | Path | None = None,
               ctes: dict[str, str] | None = None, temp: bool = True, **params: Any) -> int:
        """``CREATE OR REPLACE TEMP TABLE table AS <query>``; returns the row count.

        ``temp=False``: a plain table of the in-memory database, visible to :meth:`fork` cursors too."""
        t = _ident(table)
        self._run(name, f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {t} AS {{q}}", params, file, ctes)
        return self.count(t)

    def insert(self, table: str, name: str, file: str | Path | None = None, **params: Any) -> None:
        """Append a query's rows to ``table`` (columns matched by name, cast to the table's types).

        For an in-memory table: ``INSERT INTO table BY NAME``; for a staged table: one more Parquet part.
        """
        if table not in self._staged:
            self._run(name, f"INSERT INTO {_ident(table)} BY NAME {{q}}", params, file)
            return
        d, schema = self._staged[table]
        cols = ", ".join(f'CAST("{c}" AS {ty}) AS "{c}"' for c, ty in schema)
        part = d / f"part-{len(list(d.glob('part-*.parquet')))}.parquet"
        self._run(name, f"COPY (SELECT {cols} FROM ({{q}})) TO $stage_path (FORMAT parquet)",  # noqa: S608
                  {**params, "stage_path": str(part)}, file)

    def stage(self, table: str, name: str, file: str | Path | None = None, **params: Any) -> int:
        """Like :meth:`create`, but the rows go to Parquet under ``stage_dir`` and ``table`` becomes a
        view over them: big intermediate tables (millions of boxes) stream to disk instead of memory."""
        if self.stage_dir is None:
            return self.create(table, name, file, **params)
        t = _ident(table)
        d = self.stage_dir / t
        d.mkdir(parents=True, exist_ok=False)
        self._run(name, "COPY ({q}) TO $stage_path (FORMAT parquet)", {**params, "stage_path": str(d / "part-0.parquet")},
                  file)
        self.con.execute(view_ddl(t, "views/parquet_parts", temp=True, files=str(d / "part-*.parquet")))
        self._staged[t] = (d, [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE {t}").fetchall()])
        return self.count(t)

    def copy_parquet(self, name: str, path: Path, row_group_size: int | None = None, **params: Any) -> None:
        """``COPY (<query>) TO path`` as one zstd Parquet file (``row_group_size``: rows per row group)."""
        params = {**params, "copy_path": str(path)}
        sql, bound = self._bind(name, params)
        bound["copy_path"] = str(path)
        rg = ""
        if row_group_size is not None:
            rg, bound["row_group_size"] = ", ROW_GROUP_SIZE $row_group_size", int(row_group_size)
        t0 = time.perf_counter()
        self.con.execute(f"COPY ({sql}) TO $copy_path (FORMAT parquet, COMPRESSION zstd{rg})", bound)
        log.debug("sql/%s/%s.sql %.2f s", self.prefix, name, time.perf_counter() - t0)

    def fork(self) -> SqlRunner:
        """A runner on a new cursor of the same database (it can run a query concurrently with this one,
        from another thread); the staged views are declared there too (temp views are per cursor)."""
        other = SqlRunner(self.con.cursor(), self.prefix, self.stage_dir)
        for t, (d, schema) in self._staged.items():
            other.con.execute(view_ddl(t, "views/parquet_parts", temp=True, files=str(d / "part-*.parquet")))
            other._staged[t] = (d, schema)
        return other

    def copy_composed(self, name: str, out_path: Path, ctes: dict[str, str], file: str | Path | None = None,
                      **params: Any) -> int:
        """Like :meth:`copy_parquet` for a query composed with ``ctes`` (see :meth:`_bind`); input errors
        name ``file``. Returns the number of rows written."""
        cur = self._run(name, "COPY ({q}) TO $stage_path (FORMAT parquet, COMPRESSION zstd)",
                        {**params, "stage_path": str(out_path)}, file, ctes)
        return int(cur.fetchone()[0])

    def stream(self, name: str, ctes: dict[str, str] | None = None, file: str | Path | None = None,
               batch_rows: int = 1 << 17, **params: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """A query's result as Arrow record batches, produced while they are consumed (bounded memory).

        Why: one parse can then feed two outputs (e.g. the regions file and the quarantined rows), which
        a single ``COPY`` cannot. Errors raised while streaming (DuckDB reports a malformed file only
        when the parse reaches it; pyarrow re-raises it as ``OSError``) name ``file`` like :meth:`create`.
        """
        if file is not None:
            params = {**params, "file": str(file)}
        sql, bound = self._bind(name, params, ctes)
        try:
            reader = self.con.sql(sql, params=bound).to_arrow_reader(batch_rows)
        except _INPUT_ERRORS as exc:
            raise self._input_error(exc, name, file) from exc

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                    except (*_INPUT_ERRORS, OSError, pa.ArrowException) as exc:
                        raise self._input_error(exc, name, file) from exc
                    yield batch
            finally:
                reader.close()

        return reader.schema, batches()

    def query(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        sql, bound = self._bind(name, params)
        t0 = time.perf_counter()
        try:
            return self.con.execute(sql, bound).fetchall()
        finally:
            log.debug("sql/%s/%s.sql %.2f s", self.prefix, name, time.perf_counter() - t0)

    def count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {_ident(table)}").fetchall()[0][0])  # noqa: S608

    def close(self) -> None:
        self.con.close()
