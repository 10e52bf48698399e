"""Pre-training data loader over webdataset shards (see ``stream`` for the design).

Public API: ``DataConfig``, ``build_loader``, ``PretrainStream``, ``LoaderBatch``, ``parse_sample``,
``ImageRecord``, ``Concept``, ``CorruptSample``.
"""

from xvlm.data.loader.records import Concept, CorruptSample, ImageRecord, parse_sample
from xvlm.data.loader.stream import DataConfig, LoaderBatch, PretrainStream, build_loader

__all__ = ["Concept", "CorruptSample", "DataConfig", "ImageRecord", "LoaderBatch", "PretrainStream",
           "build_loader", "parse_sample"]
