"""Sample corpus -> lake ingest -> demo shards: the corpus's planted quirks come out as QUIRKS.json says."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from xvlm.data.lake import ingest
from xvlm.data.sample_corpus import write_sample_corpus
from xvlm.data.shards import build_shards


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("e2e")
    raw = write_sample_corpus(root / "raw", seed=0)
    ingest(raw, root / "lake")
    totals = build_shards(root / "lake", raw, root / "shards", "demo", lake_db=root / "lake" / "lake.duckdb")
    return Path(raw), root / "lake", totals


def _quirks(raw: Path, kind: str) -> list[dict]:
    return [q for q in json.loads((raw / "QUIRKS.json").read_text())["quirks"] if q["kind"] == kind]


def test_planted_quirks(demo: tuple[Path, Path, dict]) -> None:
    raw, _, totals = demo
    out = Path(totals["out"])
    removed = {r["image_key"]: r for r in pq.read_table(out / "removed.parquet").to_pylist()}
    samples = {r["image_key"]: r for r in pq.read_table(out / "samples.parquet").to_pylist()}
    for q in _quirks(raw, "karpathy_test_in_train"):
        assert removed[f"coco_{q['ref']['cocoid']}"]["reason"] == "leak"
    for q in _quirks(raw, "coco_vg_shared_image"):
        vg, coco = f"vg_{q['ref']['image_id']}", f"coco_{q['ref']['coco_id']}"
        if removed.get(coco, {}).get("reason") == "leak":  # the shared image is itself a test image
            assert removed[vg]["reason"] == "leak"
        else:
            assert removed[vg]["reason"] == "duplicate_coco_id" and removed[vg]["kept_as"] == coco
            assert "vg" in samples[coco]["sources"] and vg in samples[coco]["merged_keys"]
    (dup,) = _quirks(raw, "cc3m_cc12m_duplicate_url")
    kept = f"cc3m_{dup['ref']['cc3m_row']}"
    assert any(r["reason"] == "duplicate_url" and r["kept_as"] == kept for r in removed.values())
    # crowd boxes: no concept text from group boxes
    for q in _quirks(raw, "crowd_box"):
        key = {"coco": "coco_", "objects365": "o365_", "openimages": "oi_"}[q["source"]] + str(q["ref"]["image_id"])
        canon = removed[key]["kept_as"] if key in removed else key
        assert canon in samples
    assert totals["samples"]["texts"]["concepts"]["coco"]["group_box"] == 1
    # empty / punctuation-only texts: dropped here or already by the lake; none reaches a sample
    texts = [t for r in samples.values() for t in r["captions"] + [c["text"] for c in r["concepts"]]]
    assert texts and all(any(ch.isalnum() for ch in t) for t in texts)
    assert totals["samples"]["leaks_removed"] >= 3
    assert set(totals["audit"].values()) == {0}


def test_shards_and_views(demo: tuple[Path, Path, dict]) -> None:
    _, lake, totals = demo
    out = Path(totals["out"])
    n = 0
    for tar in sorted((out / "shards").glob("demo-*.tar")):
        with tarfile.open(tar) as tf:
            n += sum(1 for m in tf.getmembers() if m.name.endswith(".jpg"))
    assert n == totals["samples_written"] == totals["samples"]["samples"]
    con = duckdb.connect(str(lake / "lake.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM manifest").fetchone()[0] == n
        regions = con.execute("SELECT source, count(*) FROM sample_concepts WHERE kind = 'region' "
                              "AND shard BETWEEN 0 AND 9 GROUP BY ALL").fetchall()
        assert regions and {s for s, _ in regions} == {"vg"}
        left = con.execute("SELECT count(DISTINCT image_key) FROM sample_captions WHERE caption ILIKE '%left%'"
                           ).fetchone()[0]
        assert left > 0
        assert con.execute("SELECT count(*) FROM samples_removed WHERE reason = 'leak'").fetchone()[0] == \
            totals["samples"]["leaks_removed"]
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] > 0  # the lake's own views survive
    finally:
        con.close()


def test_every_stored_image_is_rgb_jpeg(demo: tuple[Path, Path, dict]) -> None:
    """The demo corpus has grayscale JPEGs (on disk and in img2dataset tars): every ``jpg`` member of the
    shards is an RGB JPEG all the same (issue 16), and the grayscale ones are stored, not dropped."""
    import io

    from PIL import Image

    _, _, totals = demo
    out = Path(totals["out"])
    modes = set()
    for tar in sorted((out / "shards").glob("demo-*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".jpg"):
                    with Image.open(io.BytesIO(tf.extractfile(m).read())) as im:  # type: ignore[union-attr]
                        modes.add((im.format, im.mode))
    assert modes == {("JPEG", "RGB")}
    keys = set(pq.read_table(out / "manifest.parquet").column("key").to_pylist())
    samples = pq.read_table(out / "samples.parquet", columns=["image_key", "image_format"]).to_pylist()
    converted = {r["image_key"] for r in samples if r["image_format"] != "JPEG/RGB"}
    assert {r["image_format"] for r in samples} == {"JPEG/RGB", "JPEG/L"}
    assert converted and converted <= keys  # re-encoded and stored, not dropped
