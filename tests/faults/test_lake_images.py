"""Image-file faults at ingest (issue 16, item 5): each bad image is quarantined on its own with its
reason and locator; the source and every other image still load; never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.data.lake_fixtures import copy_corpus, parquet_rows
from tests.faults import makers
from xvlm.data.lake import IngestConfig, ingest_source
from xvlm.data.lake.fingerprint import dir_listing_digest
from xvlm.data.lake.images import check_image
from xvlm.errors import BadInput

# name -> (maker, expected check status, expected (width, height)); each a file in the real format
CASES = {
    "png_named_jpg": (lambda p: p.write_bytes(makers.png_bytes(48, 40)), "ok", (48, 40)),
    "cmyk": (lambda p: p.write_bytes(makers.cmyk_jpeg(48, 40)), "ok", (48, 40)),
    "gray": (lambda p: p.write_bytes(makers.gray_jpeg(48, 40)), "ok", (48, 40)),
    "webp": (lambda p: p.write_bytes(makers.webp_bytes(48, 40)), "ok", (48, 40)),
    "gif": (lambda p: p.write_bytes(makers.gif_bytes(48, 40)), "ok", (48, 40)),
    "one_px": (lambda p: p.write_bytes(makers.rgb_jpeg(1, 1)), "too_small", (1, 1)),
    "thin": (lambda p: p.write_bytes(makers.rgb_jpeg(200, 31)), "too_small", (200, 31)),
    "truncated": (lambda p: p.write_bytes(makers.truncated_jpeg(64, 64)), "corrupt", (None, None)),
    "empty": (lambda p: p.write_bytes(b""), "corrupt", (None, None)),
    "dangling": (makers.dangling_symlink, "missing", (None, None)),
    "loop": (makers.symlink_loop, "unreadable", (None, None)),
    "unreadable": (makers.unreadable, "unreadable", (None, None)),
    "directory": (lambda p: p.mkdir(), "unreadable", (None, None)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_image_status(tmp_path: Path, name: str) -> None:
    make, status, size = CASES[name]
    p = tmp_path / f"{name}.jpg"
    make(p)
    assert check_image(p, min_side=32) == (status, *size)


def test_listing_fingerprint_survives_broken_links(tmp_path: Path) -> None:
    """A dangling link, a loop (ELOOP) and a socket are listed, not raised; the digest follows them."""
    (tmp_path / "a.jpg").write_bytes(makers.rgb_jpeg(40, 40))
    before = dir_listing_digest(tmp_path)
    makers.dangling_symlink(tmp_path / "b.jpg")
    with_dangling = dir_listing_digest(tmp_path)
    makers.symlink_loop(tmp_path / "c.jpg")
    makers.unreadable(tmp_path / "d.jpg")
    with_all = dir_listing_digest(tmp_path)
    assert len({before, with_dangling, with_all}) == 3
    assert dir_listing_digest(tmp_path) == with_all  # stable


def test_vg_source_quarantines_each_bad_image(corpus: Path, tmp_path: Path) -> None:
    """Six VG images replaced by faults: each quarantined with its reason at its image's locator, the
    other images load, the source is written, rows_in = loaded + quarantined."""
    raw = copy_corpus(corpus, tmp_path / "raw")
    lake = tmp_path / "lake"
    base = ingest_source(IngestConfig(raw_root=raw, out=tmp_path / "lake0"), "vg")["entities"]["images"]
    doc = json.loads((raw / "vg/image_data.json").read_text())
    records = {r["image_id"]: r for r in doc}
    index = {f"vg_{r['image_id']}": i for i, r in enumerate(doc)}  # the locator: the element's index
    # the images the baseline loads, in id order: fault i goes to the i-th of them
    loaded = sorted(r[0] for r in parquet_rows(tmp_path / "lake0", "images", "vg"))
    plan = {"dangling": ("missing_image_file", makers.dangling_symlink),
            "loop": ("unreadable_image_file", makers.symlink_loop),
            "unreadable": ("unreadable_image_file", makers.unreadable),
            "one_px": ("image_too_small", lambda p: p.write_bytes(makers.rgb_jpeg(1, 1))),
            "png_named_jpg": (None, None), "cmyk": (None, None)}
    faults: dict[str, str | None] = {}
    for (name, (reason, make)), key in zip(sorted(plan.items()), loaded, strict=False):
        rec = records[int(key.split("_", 1)[1])]
        p = next((raw / "vg").glob(f"VG_100K*/{rec['image_id']}.jpg"))
        if name == "png_named_jpg":
            p.write_bytes(makers.png_bytes(rec["width"], rec["height"]))
        elif name == "cmyk":
            p.write_bytes(makers.cmyk_jpeg(rec["width"], rec["height"]))
        else:
            make(p)
        faults[key] = reason
    stats = ingest_source(IngestConfig(raw_root=raw, out=lake), "vg")
    img = stats["entities"]["images"]
    assert img["rows_in"] == base["rows_in"] == img["loaded"] + sum(img["quarantined"].values())
    expected = dict(base["quarantined"])
    for reason in faults.values():
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    assert img["quarantined"] == expected
    assert img["loaded"] == base["loaded"] - sum(1 for r in faults.values() if r)
    q = {json.loads(r[5])["image_key"]: r for r in parquet_rows(lake, "quarantine", "vg", "entity = 'images'")}
    for key, reason in faults.items():
        if reason is None:
            assert key not in q  # another format than its name, or CMYK: loaded (the shards convert it)
            continue
        _src, _entity, file, locator, got, _raw = q[key]
        assert (file, locator, got) == ("vg/image_data.json", f"[{index[key]}]", reason), key
    loaded_keys = {r[0] for r in parquet_rows(lake, "images", "vg")}
    assert {k for k, r in faults.items() if r is None} <= loaded_keys


def test_min_image_side_is_configurable(corpus: Path, tmp_path: Path) -> None:
    raw = copy_corpus(corpus, tmp_path / "raw")
    p = sorted((raw / "vg").glob("VG_100K*/*.jpg"))[0]
    p.write_bytes(makers.rgb_jpeg(1, 1))
    q1 = ingest_source(IngestConfig(raw_root=raw, out=tmp_path / "l1", min_image_side=1), "vg")
    assert "image_too_small" not in q1["entities"]["images"]["quarantined"]
    q32 = ingest_source(IngestConfig(raw_root=raw, out=tmp_path / "l32"), "vg")
    assert q32["entities"]["images"]["quarantined"]["image_too_small"] == 1
    with pytest.raises(BadInput, match="min_image_side must be an integer >= 1, got 0"):
        IngestConfig(raw_root=raw, out=tmp_path, min_image_side=0)
    assert os.path.exists(tmp_path / "l32" / "_manifest" / "vg.json")


def test_cli_ingest_with_broken_image_links(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real entry point: a dangling symlink, a loop and an unreadable file among the VG
    images are three quarantined images; exit 0, no traceback, the stats line says so."""
    from flows import cli

    raw = copy_corpus(corpus, tmp_path / "raw")
    imgs = sorted((raw / "vg").glob("VG_100K*/*.jpg"))
    base = ingest_source(IngestConfig(raw_root=raw, out=tmp_path / "lake0"), "vg")["entities"]["images"]["quarantined"]
    makers.dangling_symlink(imgs[0])
    makers.symlink_loop(imgs[1])
    makers.unreadable(imgs[2])
    monkeypatch.setattr("sys.argv", ["xvlm", "ingest", str(raw), str(tmp_path / "lake"), "--source", "vg"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out = capsys.readouterr()
    assert exited.value.code == 0 and "Traceback" not in out.err
    images_line = next(line for line in out.out.splitlines() if line.strip().startswith("images"))
    missing = base.get("missing_image_file", 0) + 1  # + the dangling link
    assert f"missing_image_file={missing}" in images_line and "unreadable_image_file=2" in images_line, images_line
