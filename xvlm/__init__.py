"""X-VLM: multi-grained vision-language pre-training, as a data-centric pipeline.

Subpackages:
- ``xvlm.data``: sample corpus, lake ingest (DuckDB + Parquet), samples and shards, loader.
- ``xvlm.models``: configs, encoders, concept pooling, heads, losses and weight loading.
"""

__version__ = "0.1.0"
