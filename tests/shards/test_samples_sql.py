"""sql/samples on the planted lake: exact sample rows, removed rows with reasons, text counts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.shards.conftest import TEST_RECIPE
from xvlm.data.shards import build_samples


@pytest.fixture(scope="module")
def built(planted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    lake, raw = planted
    out = tmp_path_factory.mktemp("samples")
    return out, build_samples(lake, raw, out, TEST_RECIPE)


def _rows(p: Path) -> dict[str, dict]:
    return {r["image_key"]: r for r in pq.read_table(p).to_pylist()}


def test_removed_rows_and_reasons(built: tuple[Path, dict]) -> None:
    out, plan = built
    got = {k: (r["reason"], r["detail"], r["kept_as"]) for k, r in _rows(out / "removed.parquet").items()}
    assert got == {
        "coco_2": ("leak", "coco_id:coco/test", None),  # coco_id taken from the 12-digit file name
        "coco_3": ("corrupt_image", "corrupt", None),
        "coco_4": ("missing_image", "missing", None),
        "vg_10": ("duplicate_coco_id", None, "coco_1"),
        "vg_11": ("leak", "coco_id:coco/test", None),
        "vg_12": ("leak", "flickr_id:flickr30k/val", None),
        "cc12m_1": ("duplicate_url", None, "cc3m_1"),
        "sbu_1": ("duplicate_sha256", None, "cc3m_2"),
        "sbu_2": ("no_text", None, None),
    }
    s = plan["stats"]
    assert s["images_selected"] == 14 and s["samples"] == 5
    assert s["leaks_removed"] == 3
    assert s["leak_lists_found"] == {"coco/test": 1, "flickr30k/val": 1}
    assert s["leak_lists_missing"] == ["coco/val", "flickr30k/test"]


def test_sample_rows_exact(built: tuple[Path, dict]) -> None:
    out, _ = built
    rows = _rows(out / "samples.parquet")
    assert sorted(rows) == ["cc3m_1", "cc3m_2", "coco_1", "coco_5", "vg_13"]
    c1 = rows["coco_1"]
    assert c1["captions"] == ["A dog."]  # "a  DOG." duplicate, "   " and "?!" empty
    assert (c1["width"], c1["height"], c1["merged_keys"], c1["sources"]) == (100, 80, ["vg_10"], ["coco", "vg"])
    got = [(c["kind"], c["text"], c["attributes"], c["x"], c["y"], c["w"], c["h"], c["source"])
           for c in c1["concepts"]]
    # VG's 200x160 copy is merged into COCO's 100x80 image: its boxes are halved.
    assert got == [("object", "dog", [], 10.0, 20.0, 30.0, 40.0, "coco"),
                   ("region", "a dog on grass", [], 0.0, 0.0, 100.0, 80.0, "vg"),
                   ("object", "dog", ["brown", "small"], 10.0, 20.0, 30.0, 40.0, "vg")]
    v = rows["vg_13"]
    assert v["captions"] == []
    assert [(c["kind"], c["text"], c["attributes"]) for c in v["concepts"]] == [
        ("region", "a red ball", []), ("object", "ball", ["red"])]
    assert rows["cc3m_1"]["captions"] == ["yellow card", "a yellow card on a table"]
    assert rows["cc3m_1"]["sources"] == ["cc12m", "cc3m"]
    assert rows["cc3m_2"]["captions"] == ["blue card", "my blue card"]


def test_shard_assignment_is_md5_of_seed_and_key(built: tuple[Path, dict]) -> None:
    out, plan = built
    assert plan["n_shards"] == 2  # ceil(5 / shard_size 3)
    for key, r in _rows(out / "samples.parquet").items():
        want = int(hashlib.md5(f"7:{key}".encode()).hexdigest()[:15], 16) % 2
        assert r["shard"] == want, key
    assert sum(plan["shard_sizes"]) == 5


def test_text_counts_balance(built: tuple[Path, dict]) -> None:
    _, plan = built
    t = plan["stats"]["texts"]
    assert t["captions"]["coco"] == {"kept": 2, "duplicate_text": 1, "empty_text": 2, "image_removed": 3}
    assert t["captions"]["sbu"] == {"kept": 1, "empty_text": 1}
    assert t["concepts"]["coco"] == {"kept": 1, "group_box": 1, "empty_text": 1}
    assert t["concepts"]["vg"] == {"kept": 4, "image_removed": 2, "empty_text": 2}
    assert plan["stats"]["captions_kept"] == 6 and plan["stats"]["concepts_kept"] == 5


def test_dropped_texts_listed(built: tuple[Path, dict]) -> None:
    out, _ = built
    d = pq.read_table(out / "dropped_texts.parquet").to_pylist()
    assert sorted((r["image_key"], r["text_id"], r["reason"]) for r in d if r["image_key"] == "vg_13") == [
        ("vg_13", "304", "empty_text"), ("vg_13", "305", "empty_text")]


def test_include_groups_keeps_crowd_box(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    build_samples(lake, raw, tmp_path, TEST_RECIPE.with_(include_groups=True))
    c1 = _rows(tmp_path / "samples.parquet")["coco_1"]
    assert [c["text"] for c in c1["concepts"]] == ["dog", "person", "a dog on grass", "dog"]


def test_limits(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    plan = build_samples(lake, raw, tmp_path, TEST_RECIPE.with_(max_captions_per_image=1, max_concepts_per_image=2))
    rows = _rows(tmp_path / "samples.parquet")
    assert rows["cc3m_1"]["captions"] == ["yellow card"]
    assert [c["text"] for c in rows["coco_1"]["concepts"]] == ["dog", "a dog on grass"]
    assert plan["stats"]["texts"]["concepts"]["vg"]["over_limit"] == 1


def test_rebuild_is_noop_and_identical(planted: tuple[Path, Path], built: tuple[Path, dict], tmp_path: Path) -> None:
    lake, raw = planted
    out, plan = built
    again = build_samples(lake, raw, out, TEST_RECIPE)
    assert again == {k: v for k, v in plan.items() if k != "seconds"}  # same build id: reused
    build_samples(lake, raw, tmp_path, TEST_RECIPE)
    for f in ("samples.parquet", "removed.parquet", "dropped_texts.parquet"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes(), f
