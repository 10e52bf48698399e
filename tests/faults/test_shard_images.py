"""Image and text faults at the shard build (issue 16, items 5 and 7): the ``jpg`` field always holds RGB
JPEG bytes; an image too small, truncated, missing, a symlink loop or unreadable is removed with its
reason; a caption with a NUL byte is dropped as ``control_characters``, never stored."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.faults import makers
from tests.shards.lakefix import cap, img, obj, write_lake
from xvlm.data.shards import Recipe, build_shards, read_member

C = "coco/train2017/"
# key -> (bytes maker or fault function, (w, h) in the lake, expected removal reason or None = a sample)
CASES: dict[str, tuple[object, tuple[int, int], str | None]] = {
    "coco_1": (lambda: makers.rgb_jpeg(64, 48), (64, 48), None),          # stored as its own bytes
    "coco_2": (lambda: makers.png_bytes(64, 48), (64, 48), None),         # PNG named .jpg
    "coco_3": (lambda: makers.cmyk_jpeg(64, 48), (64, 48), None),
    "coco_4": (lambda: makers.gray_jpeg(64, 48), (64, 48), None),
    "coco_5": (lambda: makers.webp_bytes(64, 48), (64, 48), None),
    "coco_6": (lambda: makers.gif_bytes(64, 48), (64, 48), None),
    "coco_7": (lambda: makers.rgb_jpeg(1, 1), (1, 1), "image_too_small"),
    "coco_8": (lambda: makers.truncated_jpeg(64, 48), (64, 48), "corrupt_image"),
    "coco_9": (makers.dangling_symlink, (64, 48), "missing_image"),
    "coco_10": (makers.symlink_loop, (64, 48), "unreadable_image"),
    "coco_11": (makers.unreadable, (64, 48), "unreadable_image"),
    "coco_12": (lambda: makers.rgb_jpeg(64, 48, (20, 20, 220)), (64, 48), None),  # its NUL caption dropped
}
RECIPE = Recipe(name="faults", sources=("coco",), shard_size=100, seed=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("shardfaults")
    raw, lake = root / "raw", root / "lake"
    (raw / C).mkdir(parents=True)
    originals: dict[str, bytes] = {}
    images, captions = [], []
    for i, (key, (make, (w, h), _)) in enumerate(CASES.items()):
        p = raw / C / f"{i + 1:012d}.jpg"
        if make.__code__.co_argcount == 0:  # type: ignore[attr-defined]
            originals[key] = make()  # type: ignore[operator]
            p.write_bytes(originals[key])
        else:
            make(p)  # type: ignore[operator]
        images.append(img(key, "coco", C + p.name, w, h, coco_id=100 + i))
        captions.append(cap(key, "coco", f"{i}0", f"picture number {i}"))
    captions.append(cap("coco_12", "coco", "nul", "a cat\x00 on a mat"))
    captions.append(cap("coco_12", "coco", "bel", "bell\x07 ringing"))
    captions.append(cap("coco_12", "coco", "tab", "tab\tand newline\nare whitespace"))
    rows = {"images": images, "captions": captions,
            "objects": [obj("coco_12", "coco", "o1", (1, 1, 10, 10), "nul\x00label"),
                        obj("coco_12", "coco", "o2", (1, 1, 10, 10), "cat", ["ok", "bad\x01"])]}
    write_lake(lake, rows)
    totals = build_shards(lake, raw, root / "shards", RECIPE)
    return Path(totals["out"]), totals, originals


def _members(out: Path) -> dict[str, bytes]:
    man = pq.read_table(out / "manifest.parquet").to_pylist()
    return {m["key"]: read_member(out / "shards" / m["tar"], m["jpg_offset"], m["jpg_size"]) for m in man}


def test_removed_with_reasons(built: tuple[Path, dict, dict[str, bytes]]) -> None:
    out, totals, _ = built
    removed = {r["image_key"]: r["reason"] for r in pq.read_table(out / "removed.parquet").to_pylist()}
    assert removed == {k: r for k, (_, _, r) in CASES.items() if r is not None}
    assert totals["samples_written"] == sum(r is None for _, _, r in CASES.values()) == 7
    assert totals["samples"]["removed"] == {"corrupt_image": 1, "image_too_small": 1, "missing_image": 1,
                                            "unreadable_image": 2}


def test_every_jpg_field_is_rgb_jpeg(built: tuple[Path, dict, dict[str, bytes]]) -> None:
    out, _, originals = built
    got = _members(out)
    assert sorted(got) == sorted(k for k, (_, _, r) in CASES.items() if r is None)
    for key, data in got.items():
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 48)), key
            im.load()
    assert got["coco_1"] == originals["coco_1"]  # an RGB JPEG is stored as it is (no re-encode)
    assert got["coco_12"] == originals["coco_12"]
    for key in ("coco_2", "coco_3", "coco_4", "coco_5", "coco_6"):
        assert got[key] != originals[key], key  # re-encoded
    px = {k: Image.open(io.BytesIO(got[k])).convert("RGB").getpixel((30, 30)) for k in got}
    expected = {"coco_2": (10, 200, 30), "coco_3": (255, 0, 0), "coco_4": (128, 128, 128),
                "coco_5": (10, 20, 200), "coco_6": (0, 120, 240)}
    for key, rgb in expected.items():
        assert max(abs(a - b) for a, b in zip(px[key], rgb, strict=True)) <= 6, (key, px[key])
    names = set()
    for t in (out / "shards").glob("*.tar"):
        with tarfile.open(t) as tf:
            names |= {m.name for m in tf.getmembers()}
    assert {n.rsplit(".", 1)[1] for n in names} == {"jpg", "json"}


def test_manifest_sha256_is_of_the_stored_bytes(built: tuple[Path, dict, dict[str, bytes]]) -> None:
    import hashlib

    out, _, _ = built
    got = _members(out)
    for m in pq.read_table(out / "manifest.parquet").to_pylist():
        assert m["sha256"] == hashlib.sha256(got[m["key"]]).hexdigest()


def test_control_characters_never_stored(built: tuple[Path, dict, dict[str, bytes]]) -> None:
    out, totals, _ = built
    samples = {r["image_key"]: r for r in pq.read_table(out / "samples.parquet").to_pylist()}
    s = samples["coco_12"]
    assert s["captions"] == ["picture number 11", "tab\tand newline\nare whitespace"]
    assert [(c["text"], c["attributes"]) for c in s["concepts"]] == [("cat", ["ok"])]
    dropped = {(r["text_id"], r["reason"]) for r in pq.read_table(out / "dropped_texts.parquet").to_pylist()}
    assert {("nul", "control_characters"), ("bel", "control_characters"), ("o1", "control_characters")} <= dropped
    assert totals["samples"]["texts"]["captions"]["coco"]["control_characters"] == 2
    assert totals["samples"]["texts"]["concepts"]["coco"]["control_characters"] == 1


def test_min_image_side_is_a_recipe_knob(built: tuple[Path, dict, dict[str, bytes]], tmp_path: Path) -> None:
    out, _, _ = built
    with pytest.raises(ValueError, match="min_image_side must be >= 1"):
        RECIPE.with_(min_image_side=0)
    with pytest.raises(ValueError, match="'max_caption_words' is no longer a recipe field"):
        Recipe.from_dict({**RECIPE.to_dict(), "max_caption_words": 40})
