"""Shared helpers for the lake tests: a sample corpus per session and a copy per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb


def copy_corpus(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def parquet_rows(lake: Path, table: str, source: str, where: str = "true") -> list[tuple]:
    """Rows of one lake partition (``where`` is test-authored SQL, not user input)."""
    p = lake / table / f"source={source}" / "part-0.parquet"
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM read_parquet($p) WHERE {where}", {"p": str(p)}).fetchall()  # noqa: S608
    finally:
        con.close()
