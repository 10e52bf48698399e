"""The Parquet lake: DuckDB parses the raw annotation files into one table per entity, by source.

Tables (``docs/lake.md``): images, captions, regions, objects, splits, quarantine; ``lake.duckdb`` holds
views over them. Entry points for the CLI and the Prefect flow:

- ``ingest(raw_root, out, sources=None, force=False, files=None, config=None) -> stats``;
  ``ingest_errors(stats)``: the file-level errors, one line each (an unusable file never stops the rest)
- ``ingest_lake(cfg, sources=None, force=False, log=None) -> stats``; ``ingest_source(cfg, source, ...)``
- ``lake_stats(lake_root) -> stats``; ``format_stats(stats) -> str``; ``lake_sql(lake_root, query)``
"""

from __future__ import annotations

from typing import Any

from xvlm.data.lake.config import (
    FILE_KEYS,
    SOURCES,
    CocoPaths,
    Flickr30kPaths,
    IngestConfig,
    KarpathyPaths,
    LakeInputError,
    Objects365Paths,
    OpenImagesPaths,
    VgPaths,
    WebCaptionPaths,
)
from xvlm.data.lake.ingest import (
    SourceFailed,
    format_source_stats,
    ingest,
    ingest_errors,
    ingest_lake,
    ingest_source,
    source_fingerprint,
)
from xvlm.data.lake.views import LAKE_DB, connect_lake_db, lake_sql, lake_stats, write_lake_db
from xvlm.data.lake.writer import TABLES


def format_stats(stats: dict[str, dict[str, Any]]) -> str:
    """Per source: rows read, loaded, quarantined by reason (what ``xvlm lake stats`` prints)."""
    return "\n".join(format_source_stats(s) for s in stats.values())


__all__ = [
    "FILE_KEYS", "LAKE_DB", "SOURCES", "SourceFailed", "ingest_errors", "TABLES", "CocoPaths", "Flickr30kPaths", "IngestConfig", "KarpathyPaths",
    "LakeInputError", "Objects365Paths", "OpenImagesPaths", "VgPaths", "WebCaptionPaths", "connect_lake_db", "format_source_stats",
    "format_stats", "ingest", "ingest_lake", "ingest_source", "lake_sql", "lake_stats", "source_fingerprint",
    "write_lake_db",
]
