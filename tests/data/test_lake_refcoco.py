"""RefCOCO+ val/testA/testB membership in the lake's ``splits`` table, end to end on the sample corpus,
checked against the downstream reader (xvlm/data/downstream/grounding.py) of the same files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from xvlm.data.downstream.grounding import read_refcoco
from xvlm.data.lake import IngestConfig, KarpathyPaths, ingest_source
from xvlm.data.sample_corpus import write_sample_corpus

from .lake_fixtures import copy_corpus, parquet_rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("refcoco") / "raw", seed=0)


def _expected(corpus: Path, split: str) -> set[str]:
    """coco_<id> of every image the reference reader yields for this split's file."""
    r = corpus / "refcoco+"
    g = read_refcoco(r / f"refcoco+_{split}.json", r / "refs(unc).json", r / "instances.json", corpus / "coco2014")
    assert {s.split for s in g.samples} == {split}  # the file's split is the refs' split
    ids = {int(re.search(r"_(\d+)\.jpg$", s.image).group(1)) for s in g.samples}
    return {f"coco_{i}" for i in ids}


def test_refcoco_plus_splits_on_the_sample_corpus(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    stats = ingest_source(IngestConfig(raw_root=corpus, out=out), "karpathy")
    rows = parquet_rows(out, "splits", "karpathy", "dataset = 'refcoco+'")
    got: dict[str, set[str]] = {}
    for dataset, split, key, coco_id, flickr_id, source in rows:
        assert (dataset, source, flickr_id, key) == ("refcoco+", "karpathy", None, f"coco_{coco_id}")
        got.setdefault(split, set()).add(key)
    want = {s: _expected(corpus, s) for s in ("val", "testA", "testB")}
    assert got == want and all(want.values())
    assert len(rows) == sum(len(v) for v in want.values())  # one row per image and split
    e = stats["entities"]["splits"]
    assert e["rows_in"] == e["loaded"] + sum(e["quarantined"].values())


def test_bad_refcoco_record_is_quarantined(corpus: Path, tmp_path: Path) -> None:
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = raw / "refcoco+/refcoco+_testB.json"
    recs = json.loads(p.read_text())
    p.write_text(json.dumps([*recs, {"image": "train2014/broken.jpg", "text": "x", "ref_id": 1}]))
    stats = ingest_source(IngestConfig(raw_root=raw, out=tmp_path / "lake"), "karpathy")
    assert stats["entities"]["splits"]["quarantined"] == {"invalid_id": 1}
    q = [r[1:5] for r in parquet_rows(tmp_path / "lake", "quarantine", "karpathy")]
    assert q == [("splits", "refcoco+/refcoco+_testB.json", f"[{len(recs)}]", "invalid_id")]


def test_refcoco_plus_absent_default_is_skipped_configured_is_an_error(corpus: Path, tmp_path: Path) -> None:
    raw = copy_corpus(corpus, tmp_path / "raw")
    for f in (raw / "refcoco+").glob("refcoco+_*.json"):
        f.unlink()
    cfg = IngestConfig(raw_root=raw, out=tmp_path / "lake")
    ingest_source(cfg, "karpathy")
    assert parquet_rows(cfg.out, "splits", "karpathy", "dataset = 'refcoco+'") == []
    assert parquet_rows(cfg.out, "splits", "karpathy", "dataset = 'coco'")
    own = dataclasses.replace(cfg, karpathy=KarpathyPaths(refcoco_plus={"val": "refcoco+/refcoco+_val.json"}))
    st = ingest_source(own, "karpathy")  # a configured file that is missing: an error of that file
    assert st["errors"] == [{"file": "refcoco+/refcoco+_val.json", "error": "input file not found"}]
    assert st["files"]["refcoco+/refcoco+_val.json"] == {"splits": {"rows_in": 0, "loaded": 0, "quarantined": {}}}
    assert IngestConfig.from_dict(own.to_dict()) == own
