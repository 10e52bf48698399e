"""Pictures: boxes land on the sample's boxes (pixels checked), the data report plots the Parquet counts."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from xvlm.eval.metrics import box_iou
from xvlm.viz import (
    PALETTE,
    PRED_COLOUR,
    TRUE_COLOUR,
    data_report,
    draw_boxes,
    grounding_picture,
    label_rect,
    render_sample,
    show_sample,
)


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    """Random pixels: any unintended change shows up, and no source pixel is likely to equal a box colour."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def corners(box: list[float], size: tuple[int, int], s: int) -> tuple[int, int, int, int]:
    """The spec: outer edge of the border on the box edge, inclusive pixel corners at scale ``s``."""
    x, y, w, h = box
    return (max(0, round(x * s)), max(0, round(y * s)),
            min(size[0] * s, round((x + w) * s)) - 1, min(size[1] * s, round((y + h) * s)) - 1)


def check_drawn_boxes(drawn: np.ndarray, source: Image.Image, boxes: list[list[float]], colours: list[tuple],
                      labels: list[str | None], s: int, lw: int) -> None:
    """Every border pixel of every box (not painted over by a later box or tag) has that box's colour,
    the pixel just outside and just inside the border is not part of it, and every pixel no drawing covers is
    the source pixel (nearest-neighbour upscaled by ``s``)."""
    W, H = source.size
    up = np.asarray(source.convert("RGB")).repeat(s, 0).repeat(s, 1)
    img = drawn[: H * s, : W * s]
    covered = np.zeros((H * s, W * s), dtype=bool)
    for box, colour, label in reversed(list(zip(boxes, colours, labels, strict=True))):  # last drawn on top
        x0, y0, x1, y1 = corners(box, source.size, s)
        band = np.zeros_like(covered)
        band[y0:y1 + 1, x0:x1 + 1] = True
        band[y0 + lw:y1 + 1 - lw, x0 + lw:x1 + 1 - lw] = False
        visible = band & ~covered
        assert visible.sum() > 0.5 * band.sum(), f"box {box} mostly hidden"
        assert (img[visible] == colour).all(), f"box {box}: border pixels are not {colour}"
        covered |= band
        if label:
            lx0, ly0, lx1, ly1 = label_rect((x0, y0, x1, y1), label, (W * s, H * s))
            covered[ly0:ly1 + 1, lx0:lx1 + 1] = True
    assert covered.sum() < covered.size  # something is left to compare
    np.testing.assert_array_equal(img[~covered], up[~covered])


def test_draw_boxes_border_on_the_box_edge_interior_untouched() -> None:
    src = noise_image(80, 60)
    boxes = [[10, 12, 20, 15], [45, 5, 30, 40], [0, 50, 80, 10]]  # the last touches the image border
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    out = np.asarray(draw_boxes(src, boxes, None, colours, width=2))
    a = np.asarray(src)
    assert out.shape == a.shape
    # hand-picked pixels of box 0 (x 10..29, y 12..26)
    assert tuple(out[12, 15]) == (255, 0, 0) and tuple(out[13, 15]) == (255, 0, 0)  # top border, 2 px
    assert tuple(out[14, 15]) == tuple(a[14, 15])  # first pixel inside
    assert tuple(out[11, 15]) == tuple(a[11, 15])  # first pixel above
    assert tuple(out[20, 29]) == (255, 0, 0) and tuple(out[20, 30]) == tuple(a[20, 30])  # right edge x = 29
    check_drawn_boxes(out, src, boxes, colours, [None] * 3, 1, 2)
    assert (np.asarray(src) == a).all()  # drawn on a copy


def test_render_sample_scaled_boxes_and_shared_boxes() -> None:
    src = noise_image(60, 40, seed=1)
    sample = {"key": "k1", "width": 60, "height": 40, "source": "vg", "captions": ["two things"],
              "concepts": [{"kind": "object", "text": "thing", "box": [5.0, 20.0, 10.0, 12.0], "attributes": ["red"]},
                           {"kind": "region", "text": "the big thing", "box": [30.0, 2.0, 25.5, 30.0]},
                           {"kind": "region", "text": "a red thing", "box": [5.0, 20.0, 10.0, 12.0]}]}
    out = render_sample(src, sample, scale=3)
    arr = np.asarray(out)
    assert out.width >= 180 and out.height > 120  # picture + legend below
    # two distinct boxes (the third concept shares the first box): colours 0 and 1, labels "1" and "2"
    check_drawn_boxes(arr, src, [[5, 20, 10, 12], [30, 2, 25.5, 30]], [PALETTE[0], PALETTE[1]], ["1", "2"], 3, 3)
    legend = arr[120:]
    for colour in (PALETTE[0], PALETTE[1]):  # legend lines written in the box colours
        assert (legend == colour).all(axis=-1).any()


def test_render_sample_default_scale_and_size_mismatch() -> None:
    src = noise_image(100, 50)
    out = render_sample(src, {"key": "k", "width": 100, "height": 50, "captions": ["c"], "concepts": []})
    np.testing.assert_array_equal(np.asarray(out)[:250, :500], np.asarray(src).repeat(5, 0).repeat(5, 1))
    with pytest.raises(ValueError, match="k: JSON says 99x50"):
        render_sample(src, {"key": "k", "width": 99, "height": 50})
    with pytest.raises(ValueError, match=r"concepts\[0\]\.box"):
        render_sample(src, {"key": "k", "concepts": [{"kind": "object", "text": "x", "box": [1, 2]}]})


def _tar_member(tar: Path, name: str) -> bytes:
    with tarfile.open(tar) as t:
        f = t.extractfile(name)
        assert f is not None
        return f.read()


def test_show_sample_draws_the_stored_boxes(demo_shards: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, build = demo_shards
    manifest = pq.read_table(build / "manifest.parquet").to_pylist()
    row = max(manifest, key=lambda r: (r["n_concepts"], r["key"]))
    assert row["n_concepts"] >= 3
    out = show_sample(build, row["key"], tmp_path / "show.png")
    # the sample as the tar holds it, read independently of the manifest offsets
    tar = build / "shards" / row["tar"]
    meta = json.loads(_tar_member(tar, f"{row['key']}.json"))
    src = Image.open(io.BytesIO(_tar_member(tar, f"{row['key']}.jpg"))).convert("RGB")
    distinct = list(dict.fromkeys(tuple(c["box"]) for c in meta["concepts"]))
    s = max(1, -(-448 // max(src.size)))
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape[1] >= src.width * s and drawn.shape[0] > src.height * s
    check_drawn_boxes(drawn, src, [list(b) for b in distinct], [PALETTE[i % 10] for i in range(len(distinct))],
                      [str(i + 1) for i in range(len(distinct))], s, max(2, s))


def test_show_sample_unknown_key(demo_shards: tuple[Path, Path, Path], tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no sample with key 'nope'"):
        show_sample(demo_shards[2], "nope", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_grounding_picture_and_iou() -> None:
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    src = noise_image(50, 40, seed=3)
    pred, true = [4.0, 6.0, 20.0, 18.0], [25.0, 10.0, 20.0, 25.0]
    arr = np.asarray(grounding_picture(src, "the left thing", pred, true, scale=4))
    check_drawn_boxes(arr, src, [true, pred], [TRUE_COLOUR, PRED_COLOUR], ["true", "pred"], 4, 4)
    only = np.asarray(grounding_picture(src, "x", pred, None, scale=4))
    check_drawn_boxes(only, src, [pred], [PRED_COLOUR], ["pred"], 4, 4)


# --------------------------------------------------------------------------------------------------------
# Data report
# --------------------------------------------------------------------------------------------------------


def test_data_report_plots_the_parquet_counts(demo_shards: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, lake, build = demo_shards
    rep = data_report(build, lake, tmp_path / "report.png")
    with Image.open(rep.png) as im:
        assert im.format == "PNG" and im.size == (1500, 900)

    con = duckdb.connect()  # an independent count: DuckDB SQL over the Parquet files
    for name in ("manifest", "samples", "removed", "quarantine"):
        con.read_parquet(str(build / f"{name}.parquet")).create_view(name)
    con.read_parquet(str(lake / "quarantine" / "*" / "*.parquet"), hive_partitioning=True).create_view("lake_q")
    con.execute("create view written as select s.* from samples s semi join manifest m on m.key = s.image_key")

    def q(sql: str) -> dict:
        return dict(con.execute(sql).fetchall())

    assert rep.samples_per_source == q("select source, count(*) from manifest group by 1")
    assert rep.texts_per_image == q("select n_captions + n_concepts, count(*) from manifest group by 1")
    assert rep.caption_words == q("select len(regexp_split_to_array(trim(c), '\\s+')), count(*) from "
                                  "(select unnest(captions) c from written) group by 1")
    areas = [a for (a,) in con.execute("select c.w * c.h / (width * height) from "
                                       "(select width, height, unnest(concepts) c from written)").fetchall()]
    n_concepts = con.execute("select sum(n_concepts) from manifest").fetchone()[0]
    assert sum(rep.box_area_counts) == len(areas) == n_concepts
    assert rep.box_area_counts == np.histogram(areas, bins=rep.box_area_edges)[0].tolist()
    assert rep.removed == q("select reason, count(*) from removed group by 1")
    assert rep.shard_quarantine == q("select reason, count(*) from quarantine group by 1")
    assert rep.lake_quarantine == q("select reason, count(*) from lake_q group by 1")
    # invariants against the build's own stats: every selected image is a sample or removed
    stats = json.loads((build / "stats.json").read_text())["samples"]
    assert rep.leaked == stats["leaks_removed"] > 0
    assert sum(rep.samples_per_source.values()) + sum(rep.shard_quarantine.values()) == stats["samples"]
    assert stats["samples"] + sum(rep.removed.values()) == stats["images_selected"]
    assert sum(rep.lake_quarantine.values()) > 0
    m = rep.metrics()
    assert m["report.removed.leak"] == rep.leaked and m["report.samples"] == sum(rep.samples_per_source.values())


def test_data_report_without_lake_and_default_path(demo_shards: tuple[Path, Path, Path]) -> None:
    build = demo_shards[2]
    rep = data_report(build)
    assert Path(rep.png) == build / "data_report.png" and Path(rep.png).is_file()
    assert rep.lake_quarantine == {}
    assert Counter(rep.samples_per_source) == Counter(pq.read_table(build / "manifest.parquet").column("source").to_pylist())
    with pytest.raises(FileNotFoundError, match="manifest.parquet"):
        data_report(build / "nope")
