"""Sample corpus: determinism, real on-disk formats, and every planted quirk resolving to a real defect."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from xvlm.data.sample_corpus import MANIFEST, CorpusSizes, write_sample_corpus
from xvlm.data.sample_corpus.__main__ import main as cli_main
from xvlm.data.sample_corpus.quirks import KINDS
from xvlm.data.sample_corpus.scenes import BACKGROUND, COLOURS, Scene, Shape, captions, relation, render
from xvlm.data.sample_corpus.scenes import KINDS as SHAPES

REQUIRED_KINDS = {
    "negative_box", "out_of_image_box", "zero_size_box", "empty_caption", "coco_vg_shared_image",
    "cc3m_cc12m_duplicate_url", "corrupt_jpeg", "missing_image", "karpathy_test_in_train", "crowd_box",
    "vg_object_without_attributes", "objects365_missing_image",
}
I2D_COLUMNS = ["url", "caption", "key", "status", "error_message", "width", "height", "original_width",
               "original_height", "exif", "sha256"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("sc") / "corpus", seed=0)


@pytest.fixture(scope="module")
def manifest(corpus: Path) -> dict[str, Any]:
    return json.loads((corpus / MANIFEST).read_text())


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def load_json(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_bytes())


# ---------------------------------------------------------------- determinism and atomic writes


def test_same_seed_is_byte_identical(corpus: Path, tmp_path: Path) -> None:
    again = write_sample_corpus(tmp_path / "again", seed=0)
    a, b = digests(corpus), digests(again)
    assert len(a) > 150
    assert a == b


def test_different_seed_changes_bytes(corpus: Path, tmp_path: Path) -> None:
    other = digests(write_sample_corpus(tmp_path / "s1", seed=1))
    base = digests(corpus)
    for rel in ("coco/annotations/captions_train2017.json", "vg/region_descriptions.json",
                "cc3m/Train_GCC-training.tsv", "cc3m/images/00000.tar", MANIFEST):
        assert other[rel] != base[rel], rel
    assert json.loads((tmp_path / "s1" / MANIFEST).read_text())["seed"] == 1


def test_refuses_non_empty_root_and_overwrites_atomically(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        write_sample_corpus(root)
    assert (root / "keep.txt").exists()
    assert cli_main([str(root), "--seed", "3", "--overwrite"]) == 0
    assert not (root / "keep.txt").exists()
    assert json.loads((root / MANIFEST).read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no ROOT.tmp-* / ROOT.old-* left behind


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xvlm.data.sample_corpus import web

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(web, "write_img2dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_sample_corpus(tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_sizes_validated() -> None:
    with pytest.raises(ValueError, match="vg"):
        CorpusSizes(vg=3)


# ---------------------------------------------------------------- real formats


def test_coco_format(corpus: Path) -> None:
    for split in ("train2017", "val2017"):
        caps = load_json(corpus, f"coco/annotations/captions_{split}.json")
        inst = load_json(corpus, f"coco/annotations/instances_{split}.json")
        assert set(caps) == {"info", "licenses", "images", "annotations"}
        assert set(inst) == {"info", "licenses", "images", "annotations", "categories"}
        assert caps["images"] == inst["images"]
        ids = {im["id"] for im in caps["images"]}
        for im in caps["images"]:
            assert im["file_name"] == f"{im['id']:012d}.jpg"
            with Image.open(corpus / "coco" / split / im["file_name"]) as img:
                assert img.size == (im["width"], im["height"])
        per_image = {i: sum(a["image_id"] == i for a in caps["annotations"]) for i in ids}
        assert set(per_image.values()) == {5}
        cat_ids = {c["id"] for c in inst["categories"]}
        for a in inst["annotations"]:
            assert a["image_id"] in ids and a["category_id"] in cat_ids
            assert len(a["bbox"]) == 4 and all(isinstance(v, float) for v in a["bbox"])
            assert isinstance(a["segmentation"], dict if a["iscrowd"] else list)
    big = [a for a in load_json(corpus, "coco/annotations/instances_train2017.json")["annotations"] if a["id"] > 2**31]
    assert big, "crowd ids must exceed int32 (BIGINT)"


def test_karpathy_and_flickr_format(corpus: Path) -> None:
    coco_ids = {im["id"] for s in ("train2017", "val2017")
                for im in load_json(corpus, f"coco/annotations/captions_{s}.json")["images"]}
    k = load_json(corpus, "karpathy/dataset_coco.json")
    assert k["dataset"] == "coco"
    assert {im["cocoid"] for im in k["images"]} == coco_ids
    for n, im in enumerate(k["images"]):
        assert im["imgid"] == n and im["split"] in {"train", "restval", "val", "test"}
        assert im["filename"] == f"COCO_{im['filepath']}_{im['cocoid']:012d}.jpg"
        assert im["sentids"] == [s["sentid"] for s in im["sentences"]]
        assert all(s["imgid"] == n and s["tokens"] for s in im["sentences"])
    f = load_json(corpus, "karpathy/dataset_flickr30k.json")
    assert f["dataset"] == "flickr30k"
    assert {im["split"] for im in f["images"]} == {"train", "val", "test"}
    for im in f["images"]:
        assert "cocoid" not in im and re.fullmatch(r"\d+\.jpg", im["filename"])
        assert (corpus / "flickr30k/flickr30k-images" / im["filename"]).is_file()
        assert all(s["raw"].endswith(" .") for s in im["sentences"])


def test_vg_format(corpus: Path) -> None:
    data = load_json(corpus, "vg/image_data.json")
    regions = load_json(corpus, "vg/region_descriptions.json")
    objects = load_json(corpus, "vg/objects.json")
    attrs = load_json(corpus, "vg/attributes.json")
    assert len(data) == len(regions) == len(objects) == len(attrs) == CorpusSizes().vg
    for d, r, o, a in zip(data, regions, objects, attrs, strict=True):
        assert set(d) == {"width", "url", "height", "image_id", "coco_id", "flickr_id"}
        assert r["id"] == o["image_id"] == a["image_id"] == d["image_id"]
        assert all({"region_id", "width", "height", "image_id", "phrase", "x", "y"} == set(x) for x in r["regions"])
        assert all(isinstance(x["names"], list) and "w" in x and "h" in x for x in o["objects"])
        assert [x["object_id"] for x in o["objects"]] == [x["object_id"] for x in a["attributes"]]
    assert sum(d["coco_id"] is not None for d in data) == 3


def test_web_caption_formats(corpus: Path) -> None:
    cc3m = (corpus / "cc3m/Train_GCC-training.tsv").read_text().splitlines()
    cc12m = (corpus / "cc12m/cc12m.tsv").read_text().splitlines()
    assert len(cc3m) == 40 and len(cc12m) == 30
    assert all(len(x.split("\t")) == 2 and x.split("\t")[1].startswith("http://sample.invalid/") for x in cc3m)
    assert all(len(x.split("\t")) == 2 and x.split("\t")[0].startswith("http://sample.invalid/") for x in cc12m)
    sbu = load_json(corpus, "sbu/sbu-captions-all.json")
    assert set(sbu) == {"image_urls", "captions", "user_ids"}
    assert len(sbu["image_urls"]) == len(sbu["captions"]) == len(sbu["user_ids"]) == 30


@pytest.mark.parametrize("source, n", [("cc3m", 40), ("cc12m", 30), ("sbu", 30)])
def test_img2dataset_folder_is_consistent(corpus: Path, source: str, n: int) -> None:
    folder = corpus / source / "images"
    table = pq.read_table(folder / "00000.parquet")
    assert table.schema.names == I2D_COLUMNS
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == [f"{i:09d}" for i in range(n)]
    with tarfile.open(folder / "00000.tar") as tar:
        members = tar.getmembers()
        assert all(m.mtime == 0 and m.uname == "bigdata" for m in members)
        files = {m.name: tar.extractfile(m).read() for m in members}
    ok = [r for r in rows if r["status"] == "success"]
    failed = [r for r in rows if r["status"] != "success"]
    assert failed and all(r["status"] == "failed_to_download" and r["error_message"] for r in failed)
    assert [m.name for m in members] == [f"{r['key']}.{e}" for r in ok for e in ("jpg", "json", "txt")]
    for r in ok:
        jpg = files[f"{r['key']}.jpg"]
        assert hashlib.sha256(jpg).hexdigest() == r["sha256"]
        assert files[f"{r['key']}.txt"].decode() == r["caption"]
        assert json.loads(files[f"{r['key']}.json"]) == r
        with Image.open(io.BytesIO(jpg)) as img:
            assert img.size == (r["width"], r["height"])
    stats = load_json(corpus, f"{source}/images/00000_stats.json")
    assert (stats["count"], stats["successes"], stats["failed_to_download"]) == (n, len(ok), len(failed))
    assert sum(stats["status_dict"].values()) == n
    inputs = {"cc3m": [x.split("\t")[::-1] for x in (corpus / "cc3m/Train_GCC-training.tsv").read_text().splitlines()],
              "cc12m": [x.split("\t") for x in (corpus / "cc12m/cc12m.tsv").read_text().splitlines()]}
    if source in inputs:
        assert [[r["url"], r["caption"]] for r in rows] == inputs[source]


def test_detection_formats(corpus: Path) -> None:
    o365 = load_json(corpus, "objects365/zhiyuan_objv2_train.json")
    for im in o365["images"]:
        assert re.fullmatch(r"images/v1/patch\d+/objects365_v1_\d{8}\.jpg", im["file_name"])
    assert all({"isfake", "isreflected", "iscrowd", "bbox", "area"} <= set(a) for a in o365["annotations"])
    on_disk = sum((corpus / "objects365/train" / "/".join(im["file_name"].split("/")[-2:])).is_file()
                  for im in o365["images"])
    assert on_disk == len(o365["images"]) - 1
    with open(corpus / "openimages/oidv6-train-annotations-bbox.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert header[:8] == ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax"]
    assert header[-8:] == [f"XClick{i}{a}" for a in "XY" for i in range(1, 5)]
    mids = dict(line.split(",", 1) for line in (corpus / "openimages/oidv6-class-descriptions-boxable.csv").read_text().splitlines())
    for r in rows:
        assert re.fullmatch(r"[0-9a-f]{16}", r[0]) and r[2] in mids
        x0, x1, y0, y1 = map(float, r[4:8])
        assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
        assert (corpus / f"openimages/train/{r[0]}.jpg").is_file()


# ---------------------------------------------------------------- quirks


def resolve(root: Path, rel: str, locator: str) -> Any:
    """Follow a manifest locator: JSON path (``a[1].b[2]``) or 0-based data row of TSV/CSV/parquet."""
    if rel.endswith(".tsv"):
        return (root / rel).read_text().splitlines()[int(locator)].split("\t")
    if rel.endswith(".csv"):
        return (root / rel).read_text().splitlines()[1 + int(locator)].split(",")
    if rel.endswith(".parquet"):
        return pq.read_table(root / rel).to_pylist()[int(locator)]
    node = load_json(root, rel)
    for name, idx in re.findall(r"\.?([A-Za-z_]*)\[(\d+)\]", locator):
        node = (node[name] if name else node)[int(idx)]
    return node


def test_manifest_covers_required_kinds(manifest: dict[str, Any]) -> None:
    quirks = manifest["quirks"]
    assert manifest["seed"] == 0
    kinds = {q["kind"] for q in quirks}
    assert kinds >= REQUIRED_KINDS
    assert kinds <= KINDS
    assert len({q["id"] for q in quirks}) == len(quirks)
    for q in quirks:
        assert set(q) >= {"id", "source", "file", "locator", "kind", "expected", "detail"}
        assert re.fullmatch(r"clip|(quarantine|keep):[a-z_]+", q["expected"]), q


def _box_vs_image(x: float, y: float, w: float, h: float, W: int, H: int) -> tuple[bool, bool]:
    """(inside, overlaps)."""
    inside = x >= 0 and y >= 0 and x + w <= W and y + h <= H
    overlaps = x < W and y < H and x + w > 0 and y + h > 0
    return inside, overlaps


def test_every_quirk_points_at_a_real_defect(corpus: Path, manifest: dict[str, Any]) -> None:
    vg_sizes = {d["image_id"]: (d["width"], d["height"]) for d in load_json(corpus, "vg/image_data.json")}
    train_ids = {im["id"] for im in load_json(corpus, "coco/annotations/captions_train2017.json")["images"]}
    checked = set()
    for q in manifest["quirks"]:
        rec = resolve(corpus, q["file"], q["locator"])
        ref, kind, exp = q.get("ref", {}), q["kind"], q["expected"]
        for key, field in (("image_id", "image_id"), ("annotation_id", "id"), ("region_id", "region_id"),
                           ("object_id", "object_id"), ("cocoid", "cocoid")):
            if key in ref and isinstance(rec, dict) and field in rec:
                assert rec[field] == ref[key], q["id"]
        if kind in ("negative_box", "out_of_image_box"):
            W, H = vg_sizes[rec["image_id"]]
            inside, overlaps = _box_vs_image(rec["x"], rec["y"], rec["width"], rec["height"], W, H)
            assert not inside and overlaps == (exp == "clip"), q["id"]
            if kind == "negative_box":
                assert rec["x"] < 0 or rec["y"] < 0
        elif kind == "zero_size_box":
            if isinstance(rec, list):
                assert rec[4] == rec[5]  # OpenImages XMin == XMax
            else:
                w, h = rec["bbox"][2:] if "bbox" in rec else (rec["w"], rec["h"])
                assert w == 0 or h == 0
        elif kind == "empty_caption":
            text = rec if isinstance(rec, str) else rec[0] if isinstance(rec, list) else rec.get("caption", rec.get("phrase"))
            assert re.sub(r"[\s,.'!?\"()*#:;~]", "", text) == "", q["id"]
        elif kind == "coco_vg_shared_image":
            assert rec["coco_id"] == ref["coco_id"]
            assert (corpus / ref["image_file"]).read_bytes() == (corpus / ref["coco_image_file"]).read_bytes()
        elif kind == "cc3m_cc12m_duplicate_url":
            assert rec[0] == resolve(corpus, "cc3m/Train_GCC-training.tsv", str(ref["cc3m_row"]))[1] == ref["url"]
        elif kind == "corrupt_jpeg":
            # UnidentifiedImageError (0 bytes) and "image file is truncated" are both OSErrors.
            with pytest.raises(OSError), Image.open(corpus / ref["image_file"]) as img:
                img.load()
        elif kind in ("missing_image", "objects365_missing_image"):
            assert not (corpus / ref["image_file"]).exists()
            assert ref["image_file"].split("/")[-1] in json.dumps(rec) or str(rec.get("image_id")) in ref["image_file"]
        elif kind == "karpathy_test_in_train":
            assert rec["split"] == "test" and rec["cocoid"] in train_ids
        elif kind == "crowd_box":
            if isinstance(rec, list):
                assert rec[10] == "1"  # IsGroupOf
            else:
                assert rec["iscrowd"] == 1
                if isinstance(rec.get("segmentation"), dict):
                    h, w = rec["segmentation"]["size"]
                    assert sum(rec["segmentation"]["counts"]) == h * w and rec["id"] > 2**31
        elif kind == "vg_object_without_attributes":
            assert "attributes" not in rec and rec["names"]
        elif kind == "grayscale_image":
            with Image.open(corpus / ref["image_file"]) as img:
                assert img.mode == "L"
        elif kind == "failed_download":
            assert rec["status"] == "failed_to_download" and rec["key"] == ref["key"]
            with tarfile.open(corpus / Path(q["file"]).parent / "00000.tar") as tar:
                assert not any(n.startswith(rec["key"]) for n in tar.getnames())
        elif kind == "objects365_fake_or_reflected":
            assert rec["isfake"] == 1 or rec["isreflected"] == 1
        elif kind == "person_placeholder":
            assert "<PERSON>" in rec[1]
        elif kind == "unbalanced_quote":
            assert rec[0].count('"') % 2 == 1
        else:  # pragma: no cover
            pytest.fail(f"no check for quirk kind {kind}")
        checked.add(kind)
    assert checked >= REQUIRED_KINDS


def test_unlisted_images_are_all_valid(corpus: Path, manifest: dict[str, Any]) -> None:
    """Only the listed corrupt files fail to decode: no accidental quirks."""
    listed = {q["ref"]["image_file"] for q in manifest["quirks"] if q["kind"] == "corrupt_jpeg"}
    bad = set()
    for p in corpus.rglob("*.jpg"):
        try:
            with Image.open(p) as img:
                img.load()
        except OSError:
            bad.add(p.relative_to(corpus).as_posix())
    assert bad == listed


# ---------------------------------------------------------------- shape scenes


def _nearest_colour(rgb: np.ndarray) -> str:
    palette = {**COLOURS, "background": BACKGROUND}
    return min(palette, key=lambda k: float(np.sum((np.asarray(palette[k], dtype=float) - rgb) ** 2)))


def test_rendered_scene_exact_pixels() -> None:
    a = Shape("red", "circle", (10, 20, 30, 30), "small")
    b = Shape("blue", "square", (60, 18, 40, 40), "large")
    img = np.asarray(render(Scene(120, 80, (a, b))))
    assert tuple(img[35, 25]) == COLOURS["red"] and tuple(img[38, 80]) == COLOURS["blue"]
    assert tuple(img[21, 11]) == BACKGROUND  # circle corner is background, square corner is not
    assert tuple(img[18, 60]) == COLOURS["blue"]
    assert relation(a, b) == "left of" and relation(b, a) == "right of"
    caps = captions(Scene(120, 80, (a, b)), np.random.default_rng(0), 7)  # 7 templates: each exactly once
    assert sorted(caps) == sorted([
        "A red circle left of a blue square.",
        "A blue square right of a red circle.",
        "A red circle and a blue square on a grey background.",
        "There is a red circle left of a blue square.",
        "2 shapes: a red circle, a blue square.",
        "A picture of a red circle.",
        "A small red circle on a plain background.",
    ])


def test_corpus_boxes_match_drawn_pixels(corpus: Path, manifest: dict[str, Any]) -> None:
    """VG objects (name = shape kind, first attribute = colour): the JPEG pixel at the box centre has that colour."""
    skip = {q["ref"]["image_file"] for q in manifest["quirks"] if "image_file" in q.get("ref", {})}
    n = 0
    for entry in load_json(corpus, "vg/attributes.json"):
        rel = f"vg/VG_100K/{entry['image_id']}.jpg"
        if rel in skip:
            continue
        arr = np.asarray(Image.open(corpus / rel).convert("RGB"), dtype=float)
        for o in entry["attributes"]:
            if o["names"][0] not in SHAPES or "attributes" not in o or o["h"] == 0:
                continue
            cx, cy = o["x"] + o["w"] // 2, o["y"] + o["h"] // 2
            assert _nearest_colour(arr[cy, cx]) == o["attributes"][0], (rel, o)
            assert _nearest_colour(arr[max(0, o["y"] - 2), max(0, o["x"] - 2)]) == "background"
            n += 1
    assert n > 60
