"""Acceptance of ``xvlm prepare`` (issue 20): prepare -> ingest -> shards from a local HTTP mirror of the
sample corpus, the web images downloaded by the real img2dataset, gives the same lake and the same
shards as the same files laid out by hand. Slow tier (~1 min on 2 busy cores: three img2dataset runs,
two ingests of every source, two shard builds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.prepare.server import MirrorServer, web_answers
from xvlm.data.lake import SOURCES, TABLES, IngestConfig, ingest_lake
from xvlm.data.prepare import build_mirror, image_settings, load_catalogue, prepare
from xvlm.data.sample_corpus import write_sample_corpus
from xvlm.data.shards import build_shards

pytestmark = pytest.mark.slow
WEB = ("cc3m", "cc12m", "sbu")


def _rows(lake: Path, table: str, source: str) -> list[tuple]:
    p = lake / table / f"source={source}" / "part-0.parquet"
    if not p.is_file():
        return []
    return duckdb.connect().execute("SELECT * FROM read_parquet($p) ORDER BY ALL", {"p": str(p)}).fetchall()


def test_prepare_ingest_shards_equals_the_hand_layout(tmp_path: Path) -> None:
    corpus = write_sample_corpus(tmp_path / "corpus", seed=0)
    mirror = tmp_path / "mirror"
    cat = load_catalogue()
    build_mirror(corpus, mirror, cat.files("16m"))
    assert not any((mirror / s / "images").exists() for s in WEB)  # web images only through img2dataset
    root = tmp_path / "raw"
    settings = image_settings("16m", processes=1, threads=4, timeout=1)
    with MirrorServer(mirror, web_answers(corpus), stall_s=2.0) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("http_proxy", srv.url)  # the web URLs (sample.invalid) are answered by the local server
        mp.setenv("no_proxy", "127.0.0.1")  # the mirror itself is asked directly
        report = prepare("16m", root, mirror=srv.url, settings=settings)
    assert report.ok, report.lines()
    assert report.counts() == {"fetched": len(cat.files("16m"))}
    assert {s: (w["successes"], w["failed_to_download"]) for s, w in report.web.items()} == \
        {"cc3m": (37, 3), "cc12m": (28, 2), "sbu": (27, 3)}
    # img2dataset's own output, in the folders the ingest reads
    for s in WEB:
        assert sorted(p.name for p in (root / s / "images").iterdir()) == \
            ["00000.parquet", "00000.tar", "00000_stats.json"]
        assert "original_width" in pq.read_schema(root / s / "images/00000.parquet").names
    # the same files laid out by hand: the corpus' files, the web folders img2dataset wrote
    hand = tmp_path / "hand"
    shutil.copytree(corpus, hand, ignore=shutil.ignore_patterns("QUIRKS.json"))
    for s in WEB:
        shutil.rmtree(hand / s / "images")
        shutil.copytree(root / s / "images", hand / s / "images")
    a = ingest_lake(IngestConfig(raw_root=root, out=tmp_path / "lake-a"))
    b = ingest_lake(IngestConfig(raw_root=hand, out=tmp_path / "lake-b"))
    assert {s: v["entities"] for s, v in a.items()} == {s: v["entities"] for s, v in b.items()}
    for table in TABLES:
        for source in SOURCES:
            assert _rows(tmp_path / "lake-a", table, source) == _rows(tmp_path / "lake-b", table, source), \
                (table, source)
    for s in WEB:  # img2dataset's failure rows are the lake's quarantine reasons
        assert a[s]["entities"]["images"]["quarantined"]["failed_to_download"] == \
            report.web[s]["failed_to_download"]
    sa = build_shards(tmp_path / "lake-a", root, tmp_path / "shards-a", "16m", workers=1)
    sb = build_shards(tmp_path / "lake-b", hand, tmp_path / "shards-b", "16m", workers=1)
    assert sa["samples_written"] == sb["samples_written"] > 0  # (build ids differ: they hash the raw root's path)
    ma = pq.read_table(Path(sa["out"]) / "manifest.parquet").sort_by("key").to_pylist()
    mb = pq.read_table(Path(sb["out"]) / "manifest.parquet").sort_by("key").to_pylist()
    assert ma == mb
    # a rerun checks every file and fetches nothing; img2dataset keeps its finished shards
    with MirrorServer(mirror) as srv:
        again = prepare("16m", root, mirror=srv.url, web=False)
        assert again.counts() == {"complete": len(cat.files("16m"))} and srv.faults.served == []


@pytest.mark.usefixtures("prefect_harness")
def test_prepare_flow_and_its_mlflow_run(tmp_path: Path) -> None:
    """The Prefect flow (what prepare-4m / prepare-16m run) from a mirror folder, and the MLflow run of a
    report: files per outcome, img2dataset's counts per web source."""
    import mlflow

    from flows.prepare import prepare as prepare_flow
    from xvlm import tracking

    corpus = write_sample_corpus(tmp_path / "corpus", seed=0)
    mirror = tmp_path / "mirror"
    build_mirror(corpus, mirror, load_catalogue().files("4m", ["vg", "karpathy"]))
    out = prepare_flow(recipe="4m", root=str(tmp_path / "raw"), mirror=str(mirror), sources=["vg", "karpathy"],
                       web=False)
    assert out["ok"] and out["counts"] == {"fetched": 7}
    assert (tmp_path / "raw/vg/region_descriptions.json").read_bytes() == \
        (corpus / "vg/region_descriptions.json").read_bytes()
    report = {**out, "web": {"sbu": {"count": 30, "successes": 27, "failed_to_download": 3,
                                     "failed_to_resize": 0, "shards": 1}}}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        run_id = tracking.log_prepare_run(tracking.experiment_id("prepare-4m", tmp_path), report)
        run = mlflow.get_run(run_id)
    finally:
        mlflow.set_tracking_uri(None)
    assert run.data.metrics == {"files.fetched": 7.0, "sbu.images.count": 30.0, "sbu.images.successes": 27.0,
                                "sbu.images.failed_to_download": 3.0, "sbu.images.failed_to_resize": 0.0,
                                "sbu.images.shards": 1.0}
    assert run.data.tags["recipe"] == "4m" and run.data.tags["stage"] == "prepare"
