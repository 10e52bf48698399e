"""sql/samples/image_outcomes.sql against a plain Python statement of its rules (METHOD.md section 6).

The query runs the dedup windows over the candidates only (images sharing a hashed coco_id, URL or
sha256 with another selected image); the reference below applies the five passes to EVERY image, as the
query did before issue 15. Random lakes with small key pools make long chains (a COCO id shared with a
URL shared with a sha256), unusable and leaked images in the middle of groups, and NULL keys.
"""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from xvlm.data.lake.sqlrun import SqlRunner
from xvlm.data.shards.images import PROBE_SCHEMA

LEAK_SPLITS = ["coco/test", "flickr30k/val"]
STATUS_REASON = {None: "missing_image", "missing": "missing_image", "unreadable": "unreadable_image",
                 "corrupt": "corrupt_image", "too_small": "image_too_small", "size_mismatch": "image_size_mismatch"}


def _lake(seed: int, n: int = 300) -> tuple[list[dict], list[dict], list[dict]]:
    rnd = random.Random(seed)
    sources = ["coco", "vg", "cc3m", "cc12m", "sbu"]
    sel, probe = [], []
    for i in range(n):
        src = rnd.choice(sources)
        key = f"{src}_{i}"
        sel.append({
            "image_key": key, "source": src, "prio": sources.index(src) + 1, "split": "train",
            "path": f"{src}/{i}.jpg", "tar_key": None,
            "url": f"http://x/{rnd.randrange(40)}.jpg" if src in ("cc3m", "cc12m") and rnd.random() < 0.7 else None,
            "width": 640, "height": 480,
            "coco_id": rnd.randrange(30) if src in ("coco", "vg") and rnd.random() < 0.8 else None,
            "flickr_id": rnd.randrange(200) if rnd.random() < 0.1 else None, "lake_sha256": None})
        if rnd.random() < 0.03:  # no probe row at all: missing
            continue
        status = rnd.choices(["ok", "missing", "unreadable", "corrupt", "too_small", "size_mismatch"],
                             [0.85, 0.03, 0.03, 0.03, 0.03, 0.03])[0]
        probe.append({"image_key": key, "status": status,
                      "sha256": f"{rnd.randrange(60):064x}" if status == "ok" and rnd.random() < 0.6 else None,
                      "file_width": 640, "file_height": 480, "nbytes": 1000, "image_format": "jpeg"})
    splits = [{"dataset": "coco", "split": rnd.choice(["test", "train"]), "image_key": f"x_{j}",
               "coco_id": rnd.randrange(30), "flickr_id": None} for j in range(3)]
    splits += [{"dataset": "flickr30k", "split": "val", "image_key": f"f_{j}", "coco_id": None,
                "flickr_id": rnd.randrange(200)} for j in range(5)]
    splits.append({"dataset": "coco", "split": "test", "image_key": sel[rnd.randrange(n)]["image_key"],
                   "coco_id": None, "flickr_id": None})
    return sel, probe, splits


def _reference(sel: list[dict], probe: list[dict], splits: list[dict]) -> dict[str, tuple]:
    """(canonical_key, reason, detail) per image: the five window passes over every image."""
    pr = {p["image_key"]: p for p in probe}
    leaks: dict[str, list[str]] = {}
    for sp in splits:
        ds = f"{sp['dataset']}/{sp['split']}"
        if ds not in LEAK_SPLITS:
            continue
        for s in sel:
            for field in ("coco_id", "flickr_id", "image_key"):
                if s[field] is not None and s[field] == sp[field]:
                    leaks.setdefault(s["image_key"], []).append(f"{field}:{ds}")
    out: dict[str, tuple] = {}
    live = []
    for s in sel:
        p = pr.get(s["image_key"], {})
        status = p.get("status")
        pre = STATUS_REASON.get(status) or ("leak" if s["image_key"] in leaks else None)
        if pre is None:
            live.append({**s, "sha256": p["sha256"], "rk": f"{s['prio']:04d}:{s['image_key']}"})
        else:
            out[s["image_key"]] = (None, pre, min(leaks[s["image_key"]]) if pre == "leak" else status)

    def group_min(rows: list[dict], by: str, val: str, out_col: str) -> None:
        best: dict = {}
        for r in rows:
            if r[by] is not None:
                best[r[by]] = min(best.get(r[by], r[val]), r[val])
        for r in rows:
            r[out_col] = best[r[by]] if r[by] is not None else r[val]

    group_min(live, "coco_id", "rk", "g1")
    group_min(live, "url", "g1", "g2x")
    group_min(live, "g1", "g2x", "g2")
    group_min(live, "sha256", "g2", "g3x")
    group_min(live, "g2", "g3x", "g3")
    for r in live:
        reason = ("duplicate_coco_id" if r["g1"] != r["rk"] else "duplicate_url" if r["g2"] != r["rk"]
                  else "duplicate_sha256" if r["g3"] != r["rk"] else None)
        out[r["image_key"]] = (r["g3"].split(":", 1)[1], reason, None)
    return out


def _run_query(sel: list[dict], probe: list[dict], splits: list[dict]) -> list[tuple]:
    con = duckdb.connect()
    sel_t = pa.Table.from_pylist(sel, schema=pa.schema([
        ("image_key", pa.string()), ("source", pa.string()), ("prio", pa.int32()), ("split", pa.string()),
        ("path", pa.string()), ("tar_key", pa.string()), ("url", pa.string()), ("width", pa.int32()),
        ("height", pa.int32()), ("coco_id", pa.int64()), ("flickr_id", pa.int64()), ("lake_sha256", pa.string())]))
    probe_t = pa.Table.from_pylist(probe, schema=PROBE_SCHEMA)
    splits_t = pa.Table.from_pylist(splits, schema=pa.schema([
        ("dataset", pa.string()), ("split", pa.string()), ("image_key", pa.string()), ("coco_id", pa.int64()),
        ("flickr_id", pa.int64())]))
    for name, t in (("sel_images", sel_t), ("probe", probe_t), ("l_splits", splits_t)):
        con.register(f"{name}_arrow", t)
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")  # noqa: S608 - fixed names
    run = SqlRunner(con, prefix="samples")
    assert run.create("outcomes", "image_outcomes", leak_splits=LEAK_SPLITS) == len(sel)
    return con.execute("SELECT image_key, canonical_key, reason, detail FROM outcomes").fetchall()


@pytest.mark.parametrize("seed", range(8))
def test_outcomes_equal_the_windows_over_every_image(seed: int) -> None:
    sel, probe, splits = _lake(seed)
    want = _reference(sel, probe, splits)
    rows = _run_query(sel, probe, splits)
    assert [r[0] for r in rows] == sorted(s["image_key"] for s in sel)  # one row per image, in key order
    assert {k: (c, r, d) for k, c, r, d in rows} == want
    reasons = {r for _, r, _ in want.values()}  # the lake exercises every pass (else the test proves little)
    assert {"duplicate_coco_id", "duplicate_url", "duplicate_sha256", "leak"} <= reasons


def test_chain_through_all_three_keys() -> None:
    """coco_1 ~coco_id~ vg_2; cc3m_3 ~url~ cc12m_4; vg_2 ~sha256~ cc3m_3: one group, canonical coco_1."""
    sel, probe = [], []
    for key, src, prio, coco, url in (("coco_1", "coco", 1, 7, None), ("vg_2", "vg", 2, 7, None),
                                      ("cc3m_3", "cc3m", 3, None, "u"), ("cc12m_4", "cc12m", 4, None, "u"),
                                      ("sbu_5", "sbu", 5, None, None)):
        sel.append({"image_key": key, "source": src, "prio": prio, "split": "train", "path": key, "tar_key": None,
                    "url": url, "width": 1, "height": 1, "coco_id": coco, "flickr_id": None, "lake_sha256": None})
        sha = "s" if key in ("vg_2", "cc3m_3") else None
        probe.append({"image_key": key, "status": "ok", "sha256": sha, "file_width": 1, "file_height": 1,
                      "nbytes": 1, "image_format": "jpeg"})
    got = {k: (c, r) for k, c, r, _ in _run_query(sel, probe, [])}
    # cc12m_4 reaches coco_1 through cc3m_3's URL and then cc3m_3's sha256: the second pass of each key
    # (the min over the previous group) carries the whole group along; its reason is the first key it shares.
    assert got == {"coco_1": ("coco_1", None), "vg_2": ("coco_1", "duplicate_coco_id"),
                   "cc3m_3": ("coco_1", "duplicate_sha256"), "cc12m_4": ("coco_1", "duplicate_url"),
                   "sbu_5": ("sbu_5", None)}
