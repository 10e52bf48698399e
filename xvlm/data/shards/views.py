"""Views over a shard build in ``lake.duckdb``, next to the lake's own views.

``write_shard_views(lake_db, build)`` adds (``CREATE OR REPLACE``) these views, by absolute path to
the build's Parquet files, so the newest finalized build is what they show:

- ``samples``          one row per sample (captions list, concepts list of structs, shard)
- ``sample_captions``  one row per (sample, caption);  ``sample_concepts`` one row per (sample, concept)
- ``manifest``         one row per written sample: shard, key, tar, byte offsets/sizes, counts, sha256
- ``samples_removed``  images that became no sample, with reason (leak, duplicate_*, unreadable, no_text)
- ``samples_dropped_texts``  captions/boxes not kept, with reason;  ``shard_quarantine`` write-time drops

The lake ingest rewrites ``lake.duckdb`` from scratch, which drops these views: call this again
after an ingest (the demo does it after every shard build). The database is opened with the lake's
``connect_lake_db``: if this call creates the file, it is in the storage version the shipped
``duckdb`` shell reads (a plain ``duckdb.connect`` would write one the shell rejects).
"""

from __future__ import annotations

from pathlib import Path

from xvlm.data.lake import connect_lake_db
from xvlm.data.lake.sqlrun import view_ddl
from xvlm.errors import MissingInput

VIEWS: dict[str, tuple[str, str]] = {
    "samples": ("parquet_file", "samples"),
    "sample_captions": ("sample_captions", "samples"),
    "sample_concepts": ("sample_concepts", "samples"),
    "manifest": ("parquet_file", "manifest"),
    "samples_removed": ("parquet_file", "removed"),
    "samples_dropped_texts": ("parquet_file", "dropped"),
    "shard_quarantine": ("parquet_file", "quarantine"),
}
"""View name -> (its ``sql/views`` file, the build file it reads: its ``$path``, written in by ``view_ddl``)."""


def write_shard_views(lake_db: str | Path, build: str | Path) -> list[str]:
    """Add the shard views for the finalized build folder ``build`` to ``lake_db``; returns their names."""
    build = Path(build).resolve()
    files = {"samples": build / "samples.parquet", "manifest": build / "manifest.parquet",
             "removed": build / "removed.parquet", "dropped": build / "dropped_texts.parquet",
             "quarantine": build / "quarantine.parquet"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise MissingInput(f"{missing[0]}: build not finalized; run the shard build first")
    con = connect_lake_db(lake_db)
    try:
        for name, (sql, file) in VIEWS.items():
            con.execute(view_ddl(name, f"views/{sql}", path=files[file]))
    finally:
        con.close()
    return list(VIEWS)
