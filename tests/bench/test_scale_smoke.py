"""Smoke test of the scale generators (bench/scale): every pre-training source generated at 0.1% of its
real counts and ingested; the ingest's rows_in per source and entity equal the generator's own counts,
every row is loaded or quarantined, and the planted broken lines are quarantined as such."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.scale import SCALE_SOURCES, generate
from bench.scale.common import REAL, scaled
from bench.scale.measure import ingest_config
from xvlm.data.lake import ingest_source


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "raw"
    generate(out, 0.001)
    return out


def test_counts_are_the_real_ones_scaled(raw: Path) -> None:
    doc = json.loads((raw / "counts.json").read_text())
    assert doc["scale"] == 0.001
    rows = doc["rows_in"]
    assert rows["objects365"] == {"images": 1742, "objects": 25424}
    assert rows["cc12m"] == {"images": 12423, "captions": 12423}
    assert rows["coco"]["objects"] == scaled("coco_train_instances", 0.001) + scaled("coco_val_instances", 0.001)
    assert scaled("oi_boxes", 1.0) == REAL["oi_boxes"] == 14_610_229
    tsv = (raw / "cc3m/Train_GCC-training.tsv").read_bytes()
    assert tsv.count(b"\n") == rows["cc3m"]["captions"]  # one line per row, none lost to the writer


def test_every_source_ingests_with_the_generated_counts(raw: Path, tmp_path: Path) -> None:
    doc = json.loads((raw / "counts.json").read_text())
    cfg = ingest_config(raw, tmp_path / "lake")
    for source in (*SCALE_SOURCES, "karpathy"):
        ent = ingest_source(cfg, source)["entities"]
        expected = dict(doc["rows_in"][source])
        if source == "coco":  # every image is listed by its captions file and by its instances file (issue 16:
            expected["images"] *= 2  # the images of every file are read; the identical second copies merge)
            assert ent["images"]["merged"] == doc["rows_in"]["coco"]["images"]
        assert {e: v["rows_in"] for e, v in ent.items() if e in expected} == expected, source
        for e, v in ent.items():
            assert v["rows_in"] == v["loaded"] + sum(v["quarantined"].values()), (source, e)
            assert v["loaded"] > 0, (source, e)
        if source == "openimages":  # the synthetic size index gives every image its size (no image bytes)
            assert "unknown_image_size" not in ent["objects"]["quarantined"]
        if source in ("cc3m", "cc12m"):
            planted = doc["planted"][source]
            assert ent["images"]["quarantined"].get("wrong_column_count", 0) == planted["tabs"]
            assert ent["images"]["quarantined"].get("invalid_utf8", 0) == planted["utf8"]


def test_shard_rate_bench_runs_small(tmp_path: Path) -> None:
    """``bench.scale.shardrate`` at 8 images of one size, 1 round: every mode measured, the stored sizes as
    the modes say (kept bytes are the input plus tar/JSON overhead; a smaller max side, fewer bytes),
    and the projection is the larger of its CPU and I/O bounds."""
    from concurrent.futures import ProcessPoolExecutor

    from bench.scale.shardrate import MODES, measure_size, project

    with ProcessPoolExecutor(max_workers=2) as pool:
        got = measure_size(tmp_path / "r", 640, 480, 8, 1, pool)
    assert set(MODES) <= set(got) and not (tmp_path / "r").exists()
    kb = {m: got[m]["tar_kb_per_sample"] for m in MODES}
    # + per sample 1.5 KB of headers and ~1 KB of JSON, + per 2-sample shard its <= 10 KB tar record padding
    assert got["input_kb_per_image"] < kb["orig"] < got["input_kb_per_image"] + 8
    assert kb["r384"] < kb["r512"] < kb["orig"]
    proj = project([got], samples=1e6, cores=32, machines=[4], disk_gbps=1.0, net_gbps=1.25, efficiency=1.0)
    r512 = proj["640x480/r512"]
    cpu_h = 1e6 / (got["r512"]["ours_samples_per_cpu_s"] * 32) / 3600
    io_h = 1e6 * (got["input_kb_per_image"] + kb["r512"]) * 1e3 / 1e9 / 3600
    assert r512["one_32core_h"] == round(max(cpu_h, io_h), 2)
    assert r512["dask_4x32_h"] <= r512["one_32core_h"]


def test_query_bench_times_the_dedup_on_a_generated_lake(raw: Path, tmp_path: Path) -> None:
    """bench.scale.query: the dedup's inputs saved from a generated lake, the query timed on them; every
    selected image has one outcome row, and the fingerprint is the same on a second run."""
    from bench.scale.query import save, time_query
    from xvlm.data.lake.views import write_lake_db

    cfg = ingest_config(raw, tmp_path / "lake")
    for source in (*SCALE_SOURCES, "karpathy"):
        ingest_source(cfg, source)
    write_lake_db(tmp_path / "lake")
    save(tmp_path / "lake", tmp_path / "q")
    import pyarrow.parquet as pq
    n_sel = pq.read_metadata(tmp_path / "q/sel_images.parquet").num_rows
    a, b = (time_query(tmp_path / "q", 1, "1GB", tmp_path / f"prof{i}.json") for i in range(2))
    assert a["rows"] == n_sel > 0 and sum(n for _, n in a["by_reason"]) == n_sel
    assert a["fingerprint"] == b["fingerprint"]
    assert dict(a["by_reason"]).get("duplicate_coco_id", 0) > 0  # the generator's VG images share COCO ids
    assert json.loads((tmp_path / "prof0.json").read_text())["operator"]  # the DuckDB profile was written
    from xvlm.data.shards import samples
    from xvlm.data.shards.images import probe_images
    assert samples.probe_images is probe_images  # the synthetic probe was only borrowed
