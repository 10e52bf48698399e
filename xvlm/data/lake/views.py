"""``lake.duckdb``: a DuckDB database of views over the lake's Parquet files, and lake-level stats.

The views read ``<lake>/<table>/source=*/part-0.parquet`` by absolute path (DuckDB resolves relative
paths against the working directory, not the database file), so the database works from anywhere but
must be rewritten if the lake moves (any ingest run does). It is built in a temp file and renamed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from xvlm.data.lake.sqlrun import SqlRunner, view_ddl
from xvlm.data.lake.writer import PART_FILE, TABLES
from xvlm.errors import MissingInput
from xvlm.fsio import atomic_path

LAKE_DB = "lake.duckdb"
# Storage format for lake.duckdb: the `duckdb` shell the project ships (PyPI duckdb-cli 1.5.x) reads
# storage versions 64-68 only, while the Python duckdb 2.x writes 69 by default. v1.4.0 is readable
# by both (tests/data/test_lake_views.py runs the shell on a written lake).
STORAGE_COMPATIBILITY = "v1.4.0"


def connect_lake_db(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open ``lake.duckdb``; for writing, with the storage version the shipped shell can read.

    Every writer of the file must go through here (a plain ``duckdb.connect`` creating the file
    would make it unreadable for the shell).
    """
    if read_only:
        return duckdb.connect(str(path), read_only=True)
    return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})


def _view_ddl(out: Path, tables: list[str]) -> list[str]:
    ddl = [view_ddl(t, "views/lake_table", files=str(out / t / "source=*" / PART_FILE)) for t in tables]
    if "quarantine" in tables:
        ddl.append(view_ddl("quarantine_summary", "views/quarantine_summary"))
    return ddl


def _existing_ddl(db: Path) -> list[str] | None:
    try:
        con = connect_lake_db(db, read_only=True)
    except duckdb.Error:
        return None
    try:
        return [r[0] for r in SqlRunner(con, prefix="views").query("lake_views_ddl")]
    except duckdb.Error:
        return None
    finally:
        con.close()


def write_lake_db(out: Path) -> Path | None:
    """(Re)write ``out/lake.duckdb`` with one view per table plus ``quarantine_summary``; None if empty.

    Left untouched when it already holds exactly these views (a no-op rerun rewrites nothing).
    """
    out = Path(out).resolve()
    tables = [t for t in TABLES if any((out / t).glob(f"source=*/{PART_FILE}"))]
    if not tables:
        return None
    final = out / LAKE_DB
    ddl = _view_ddl(out, tables)
    if final.is_file() and _existing_ddl(final) == ddl:
        return final
    with atomic_path(final) as tmp:
        con = connect_lake_db(tmp)
        try:
            for stmt in ddl:
                con.execute(stmt)
            # The DDL as written, to recognise an up-to-date database on the next run.
            SqlRunner(con, prefix="views").create("_lake_views", "lake_views_record", temp=False, ddl=ddl)
        finally:
            con.close()
    return final


def lake_stats(lake_root: str | Path) -> dict[str, dict[str, Any]]:
    """Stats of every source in a lake, from its manifests, with loaded counts re-checked on the files."""
    root = Path(lake_root)
    out: dict[str, dict[str, Any]] = {}
    con = duckdb.connect()
    run = SqlRunner(con, prefix="views")
    try:
        for m in sorted((root / "_manifest").glob("*.json")):
            doc = json.loads(m.read_text(encoding="utf-8"))
            stats = doc["stats"]
            source = doc["source"]
            for table in ("images", "captions", "regions", "objects", "splits"):
                p = root / table / f"source={source}" / PART_FILE
                if not p.is_file():
                    continue
                n = run.query("parquet_row_count", path=p)[0][0]
                e = stats["entities"].get(table)
                if e is not None and e["loaded"] - e.get("merged", 0) != n:
                    raise RuntimeError(f"{p}: {n} rows on disk but the manifest says {e['loaded']} loaded; "
                                       "re-run the ingest")
            out[source] = stats
    finally:
        con.close()
    return out


def lake_sql(lake_root: str | Path, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a read-only query against ``lake.duckdb``; returns (column names, rows)."""
    db = Path(lake_root) / LAKE_DB
    if not db.is_file():
        raise MissingInput(f"{db}: no lake database; run the ingest first")
    con = connect_lake_db(db, read_only=True)
    try:
        cur = con.execute(query)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()
