"""Data side of the pipeline: DuckDB is confined to this package; SQL text lives in ``sql/``."""
