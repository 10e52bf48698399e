"""Atomic, per-source partition writes and the per-source manifest.

Layout of a lake rooted at ``out``::

    out/<table>/source=<source>/part-0.parquet   one file per (table, source); every source writes all
                                                 six tables (possibly empty) so the views always bind
    out/_manifest/<source>.json                  fingerprint + stats of the last completed ingest
    out/_tmp/                                    staging; same file system, so renames are atomic
    out/lake.duckdb                              views over the Parquet files

A source is staged completely under ``_tmp``, then its manifest is removed, each partition directory is
swapped in with ``os.replace`` (old one moved aside first), and the new manifest is written last
(temp file + rename). A crash at any point leaves either no manifest (=> re-ingested next run) or a
complete source; readers never see a half-written Parquet file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xvlm.fsio import write_json

TABLES: tuple[str, ...] = ("images", "captions", "regions", "objects", "splits", "quarantine")
PART_FILE = "part-0.parquet"


def partition_dir(out: Path, table: str, source: str) -> Path:
    return out / table / f"source={source}"


def manifest_path(out: Path, source: str) -> Path:
    return out / "_manifest" / f"{source}.json"


def read_manifest(out: Path, source: str) -> dict[str, Any] | None:
    p = manifest_path(out, source)
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def is_current(out: Path, source: str, fingerprint: str) -> bool:
    """True when the lake holds a complete ingest of ``source`` with this fingerprint."""
    m = read_manifest(out, source)
    return (m is not None and m.get("fingerprint") == fingerprint
            and all((partition_dir(out, t, source) / PART_FILE).is_file() for t in TABLES))


def write_source_partitions(out: Path, source: str, write_table: Callable[[str, Path], None],
                            manifest: dict[str, Any]) -> None:
    """Stage every table of ``source`` with ``write_table(table, parquet_path)``, then swap into place."""
    stage = out / "_tmp" / f"{source}-{uuid.uuid4().hex}"
    try:
        for table in TABLES:
            d = stage / table
            d.mkdir(parents=True)
            write_table(table, d / PART_FILE)
        mp = manifest_path(out, source)
        mp.unlink(missing_ok=True)
        # directory swaps, not file writes (xvlm.fsio renames files): the manifest is the commit marker
        for table in TABLES:
            final = partition_dir(out, table, source)
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if final.exists():
                old = stage / f"old-{table}"
                os.replace(final, old)
            os.replace(stage / table, final)
            if old is not None:
                shutil.rmtree(old)
        write_json(mp, manifest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
