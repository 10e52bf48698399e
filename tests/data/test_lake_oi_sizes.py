"""OpenImages with an image size index (``openimages.image_sizes``): the boxes a run without image
checks loads from the index are exactly those a run reading the JPEG headers loads; without the index
every box is ``unknown_image_size``; a bad index line is quarantined in the index (entity ``image_sizes``)
and leaves its image without an index size; a header mismatch is a quarantined image."""

from __future__ import annotations

from pathlib import Path

import pytest

from xvlm.data.lake import IngestConfig, ingest_lake, lake_sql
from xvlm.data.lake.config import OpenImagesPaths
from xvlm.data.sample_corpus import write_sample_corpus

BOXES = "SELECT image_key, object_id, x, y, w, h, label, is_group, clipped FROM objects WHERE source = 'openimages'"
SIZES = "openimages/image_sizes.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("oi") / "raw", seed=0)


@pytest.fixture(scope="module")
def checked(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple]]:
    """The lake of a run reading the JPEG headers, and its OpenImages ``(ImageID, width, height)``."""
    ref = tmp_path_factory.mktemp("oi") / "checked"
    _ingest(corpus, ref, check=True)
    return ref, _rows(ref, "SELECT source_id, width, height FROM images WHERE source = 'openimages'")


def _ingest(raw: Path, out: Path, check: bool, sizes: str | None = None) -> dict:
    cfg = IngestConfig(raw_root=raw, out=out, check_images=check, openimages=OpenImagesPaths(image_sizes=sizes))
    return ingest_lake(cfg, sources=["openimages"])["openimages"]


def _rows(lake: Path, sql: str) -> list[tuple]:
    return sorted(lake_sql(lake, sql)[1])


def test_size_index_gives_the_header_checked_boxes(corpus: Path, checked: tuple[Path, list[tuple]],
                                                    tmp_path: Path) -> None:
    ref, images = checked
    assert images, "the sample corpus has OpenImages images"
    (corpus / SIZES).write_text("ImageID,Width,Height\n" + "".join(f"{i},{w},{h}\n" for i, w, h in images))
    try:
        sized = tmp_path / "sized"
        _ingest(corpus, sized, check=False, sizes=SIZES)
        bare = tmp_path / "bare"
        stats = _ingest(corpus, bare, check=False)
    finally:
        (corpus / SIZES).unlink()
    want = _rows(ref, BOXES)
    assert want and _rows(sized, BOXES) == want
    assert _rows(sized, "SELECT source_id, width, height FROM images WHERE source = 'openimages'") == images
    # without the index and without checks: no box has pixel coordinates
    assert _rows(bare, "SELECT count(*) FROM objects WHERE source = 'openimages'") == [(0,)]
    obj = stats["entities"]["objects"]
    reasons = dict(_rows(bare, "SELECT reason, count(*) FROM quarantine WHERE source = 'openimages' "
                               "AND entity = 'objects' GROUP BY reason"))
    assert reasons.get("unknown_image_size", 0) >= len(want) and sum(reasons.values()) == obj["rows_in"] - obj["loaded"]


def test_bad_index_values_are_quarantined(corpus: Path, checked: tuple[Path, list[tuple]], tmp_path: Path) -> None:
    (a, _, ha), (b, wb, hb), *rest = checked[1]
    # a: not a number; b: one pixel wider than its file (a mismatch only a header check can see)
    lines = [f"{a},wide,{ha}", f"{b},{wb + 1},{hb}", *(f"{i},{w},{h}" for i, w, h in rest)]
    (corpus / SIZES).write_text("ImageID,Width,Height\n" + "\n".join(lines) + "\n")
    try:
        off, on = tmp_path / "off", tmp_path / "on"
        _ingest(corpus, off, check=False, sizes=SIZES)
        _ingest(corpus, on, check=True, sizes=SIZES)
    finally:
        (corpus / SIZES).unlink()
    q = "SELECT locator, reason FROM quarantine WHERE source = 'openimages' AND entity = 'images'"
    # a's bad line is quarantined once, in the index (line 2; the header is line 1): its image is not,
    # it just has no index size - from the header with checks on, else its boxes are unknown_image_size
    qs = "SELECT entity, locator, reason FROM quarantine WHERE source = 'openimages' AND entity = 'image_sizes'"
    assert _rows(off, qs) == _rows(on, qs) == [("image_sizes", "line 2", "invalid_number")]
    assert (f"ImageID={a}", "invalid_number") not in _rows(off, q) + _rows(on, q)
    sizes = "SELECT source_id, width, height FROM images WHERE source = 'openimages'"
    assert [r[1:] for r in _rows(off, sizes) if r[0] == a] == [(None, None)]
    assert [r[1:] for r in _rows(on, sizes) if r[0] == a] == [checked[1][0][1:]]
    boxes = "SELECT json_extract_string(raw, '$.image_key'), reason FROM quarantine WHERE entity = 'objects'"
    assert {r for k, r in _rows(off, boxes) if k == f"oi_{a}"} == {"unknown_image_size"}
    assert (f"ImageID={b}", "image_size_mismatch") not in _rows(off, q)  # no header read: the index is trusted
    assert (f"ImageID={b}", "image_size_mismatch") in _rows(on, q)
