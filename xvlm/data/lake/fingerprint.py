"""Content fingerprints of a source's inputs: what decides whether a source is re-ingested.

A source's fingerprint hashes (a) the bytes of every annotation file it reads (sha256, streamed),
(b) a listing of its image folders (relative name, size, mtime) - hashing every image would cost more
than the ingest, and a changed listing is what changes missing/corrupt outcomes - (c) the source's
config and the lake's rule knobs, and (d) the text of every ``sql/lake`` file plus ``LAKE_VERSION``, so a
changed query re-ingests too. Same fingerprint => same lake partitions, nothing is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from xvlm.data.lake.sqlrun import SQL_ROOT

LAKE_VERSION = "1"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (streamed in 1 MiB chunks by hashlib)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def dir_listing_digest(path: Path) -> str:
    """sha256 over the sorted (relative path, size, mtime_ns) of every file under ``path``."""
    if not path.is_dir():
        return "absent"
    h = hashlib.sha256()
    entries = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            st = p.stat()
            entries.append(f"{p.relative_to(path).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
    for e in sorted(entries):
        h.update(e.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def sql_digest() -> str:
    """sha256 of every ``sql/lake/*.sql`` file (name and text)."""
    h = hashlib.sha256(LAKE_VERSION.encode())
    for p in sorted((SQL_ROOT / "lake").glob("*.sql")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(files: list[Path], dirs: list[Path], settings: dict) -> str:
    """The fingerprint of one source: its files' bytes, its image folders' listings, its settings."""
    doc = {
        "sql": sql_digest(),
        "settings": settings,
        "files": {str(p): file_digest(p) for p in files},
        "dirs": {str(p): dir_listing_digest(p) for p in dirs},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
