"""A small hand-made lake (Parquet tables in the lake's schemas) with planted cases, plus its raw images.

Planted (recipe sources order: coco, vg, cc3m, cc12m, sbu):

- coco_1 (coco_id 1, 100x80): captions "A dog." / "a  DOG." (duplicate_text) / "   " / "?!" (empty_text);
  objects: dog box, crowd box (group_box), label "..." (empty_text)
- coco_2 (coco_id 2): in Karpathy coco/test -> leak; coco_3: truncated JPEG -> corrupt_image;
  coco_4: no file -> missing_image; coco_5: plain
- vg_10 (coco_id 1, 200x160, other bytes): merged into coco_1 (duplicate_coco_id), boxes halved
- vg_11 (coco_id 2): leak (coco_id); vg_12 (flickr_id 99 in flickr30k/val): leak (flickr_id)
- vg_13: regions "a red ball", "..." (empty_text), "" (empty_text); object "ball" + attributes
- cc3m_1 / cc12m_1: same URL -> cc12m_1 duplicate_url; cc3m_2 / sbu_1: same bytes -> duplicate_sha256
- sbu_2: only an empty caption -> no_text
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SCHEMAS = {
    "images": pa.schema([("image_key", pa.string()), ("source", pa.string()), ("split", pa.string()),
                         ("path", pa.string()), ("tar_key", pa.string()), ("url", pa.string()),
                         ("width", pa.int32()), ("height", pa.int32()), ("coco_id", pa.int64()),
                         ("flickr_id", pa.int64()), ("sha256", pa.string()), ("source_id", pa.string())]),
    "captions": pa.schema([("image_key", pa.string()), ("source", pa.string()), ("split", pa.string()),
                           ("caption_id", pa.string()), ("caption", pa.string())]),
    "objects": pa.schema([("image_key", pa.string()), ("source", pa.string()), ("object_id", pa.string()),
                          ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                          ("label", pa.string()), ("attributes", pa.list_(pa.string())),
                          ("is_group", pa.bool_()), ("clipped", pa.bool_())]),
    "regions": pa.schema([("image_key", pa.string()), ("source", pa.string()), ("region_id", pa.int64()),
                          ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                          ("phrase", pa.string()), ("clipped", pa.bool_())]),
    "splits": pa.schema([("dataset", pa.string()), ("split", pa.string()), ("image_key", pa.string()),
                         ("coco_id", pa.int64()), ("flickr_id", pa.int64()), ("source", pa.string())]),
    "quarantine": pa.schema([("source", pa.string()), ("entity", pa.string()), ("file", pa.string()),
                             ("locator", pa.string()), ("reason", pa.string()), ("raw", pa.string())]),
}
SOURCES = ["coco", "vg", "cc3m", "cc12m", "sbu", "karpathy"]


def jpeg(w: int, h: int, color: tuple[int, int, int], quality: int = 90) -> bytes:
    im = Image.new("RGB", (w, h), color)
    for i in range(0, w, 7):  # some texture so sizes differ between images
        im.putpixel((i, (i * 3) % h), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def img(key: str, source: str, path: str, w: int, h: int, *, tar_key: str | None = None, url: str | None = None,
        coco_id: int | None = None, flickr_id: int | None = None, split: str = "train") -> dict:
    return {"image_key": key, "source": source, "split": split, "path": path, "tar_key": tar_key, "url": url,
            "width": w, "height": h, "coco_id": coco_id, "flickr_id": flickr_id, "sha256": None,
            "source_id": key.split("_", 1)[1]}


def cap(key: str, source: str, cid: str, text: str) -> dict:
    return {"image_key": key, "source": source, "split": "train", "caption_id": cid, "caption": text}


def obj(key: str, source: str, oid: str, box: tuple, label: str, attrs: list[str] | None = None,
        group: bool = False) -> dict:
    x, y, w, h = box
    return {"image_key": key, "source": source, "object_id": oid, "x": x, "y": y, "w": w, "h": h,
            "label": label, "attributes": attrs or [], "is_group": group, "clipped": False}


def reg(key: str, rid: int, box: tuple, phrase: str) -> dict:
    x, y, w, h = box
    return {"image_key": key, "source": "vg", "region_id": rid, "x": x, "y": y, "w": w, "h": h,
            "phrase": phrase, "clipped": False}


def write_lake(lake: Path, rows: dict[str, list[dict]], sources: list[str] = SOURCES) -> None:
    """Write every table for every source (empty ones too, like the ingest does)."""
    for table, schema in SCHEMAS.items():
        for s in sources:
            part = [r for r in rows.get(table, []) if r["source"] == s]
            d = lake / table / f"source={s}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(part, schema=schema), d / "part-0.parquet")


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def make_planted(root: Path) -> tuple[Path, Path]:
    """Write the planted raw images and lake under ``root``; returns ``(lake_root, raw_root)``."""
    raw, lake = root / "raw", root / "lake"
    files = {
        "coco/train2017/000000000001.jpg": jpeg(100, 80, (200, 30, 30)),
        "coco/train2017/000000000002.jpg": jpeg(100, 80, (30, 200, 30)),
        "coco/train2017/000000000005.jpg": jpeg(64, 48, (30, 30, 200)),
        "vg/VG_100K/10.jpg": jpeg(200, 160, (200, 30, 30), quality=80),
        "vg/VG_100K/11.jpg": jpeg(50, 40, (30, 200, 30)),
        "vg/VG_100K/12.jpg": jpeg(60, 60, (90, 90, 10)),
        "vg/VG_100K/13.jpg": jpeg(120, 90, (10, 90, 90)),
    }
    whole = jpeg(90, 70, (120, 10, 120))
    files["coco/train2017/000000000003.jpg"] = whole[: len(whole) // 2]  # truncated
    for rel, data in files.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(data)
    same = jpeg(80, 60, (5, 5, 250))
    write_tar(raw / "cc3m/images/00000.tar", {"000000000.jpg": jpeg(70, 50, (250, 250, 5)), "000000000.txt": b"x",
                                              "000000001.jpg": same})
    write_tar(raw / "cc12m/images/00000.tar", {"000000000.jpg": jpeg(70, 50, (250, 250, 6))})
    write_tar(raw / "sbu/images/00000.tar", {"000000000.jpg": same, "000000001.jpg": jpeg(40, 40, (1, 2, 3))})
    c = "coco/train2017/"
    rows = {
        "images": [
            img("coco_1", "coco", c + "000000000001.jpg", 100, 80, coco_id=1),
            img("coco_2", "coco", c + "000000000002.jpg", 100, 80, coco_id=None),  # id from the file name
            img("coco_3", "coco", c + "000000000003.jpg", 90, 70, coco_id=3),
            img("coco_4", "coco", c + "000000000004.jpg", 90, 70, coco_id=4),
            img("coco_5", "coco", c + "000000000005.jpg", 64, 48, coco_id=5),
            img("vg_10", "vg", "vg/VG_100K/10.jpg", 200, 160, coco_id=1),
            img("vg_11", "vg", "vg/VG_100K/11.jpg", 50, 40, coco_id=2),
            img("vg_12", "vg", "vg/VG_100K/12.jpg", 60, 60, flickr_id=99),
            img("vg_13", "vg", "vg/VG_100K/13.jpg", 120, 90),
            img("cc3m_1", "cc3m", "cc3m/images/00000.tar", 70, 50, tar_key="000000000", url="http://x/u1.jpg"),
            img("cc3m_2", "cc3m", "cc3m/images/00000.tar", 80, 60, tar_key="000000001", url="http://x/u2.jpg"),
            img("cc12m_1", "cc12m", "cc12m/images/00000.tar", 70, 50, tar_key="000000000", url="http://x/u1.jpg"),
            img("sbu_1", "sbu", "sbu/images/00000.tar", 80, 60, tar_key="000000000", url="http://x/s1.jpg"),
            img("sbu_2", "sbu", "sbu/images/00000.tar", 40, 40, tar_key="000000001", url="http://x/s2.jpg"),
        ],
        "captions": [
            cap("coco_1", "coco", "1", "A dog."), cap("coco_1", "coco", "2", "a  DOG."),
            cap("coco_1", "coco", "3", "   "), cap("coco_1", "coco", "4", "?!"),
            cap("coco_2", "coco", "5", "a leaked test image"), cap("coco_3", "coco", "6", "corrupt"),
            cap("coco_4", "coco", "7", "missing"), cap("coco_5", "coco", "8", "a blue thing"),
            cap("cc3m_1", "cc3m", "1", "yellow card"), cap("cc3m_2", "cc3m", "2", "blue card"),
            cap("cc12m_1", "cc12m", "1", "a yellow card on a table"), cap("sbu_1", "sbu", "1", "my blue card"),
            cap("sbu_2", "sbu", "2", "..."),
        ],
        "objects": [
            obj("coco_1", "coco", "101", (10, 20, 30, 40), "dog"),
            obj("coco_1", "coco", "102", (0, 0, 50, 50), "person", group=True),
            obj("coco_1", "coco", "103", (5, 5, 5, 5), "..."),
            obj("vg_10", "vg", "201", (20, 40, 60, 80), "dog", ["brown", " ", "small"]),
            obj("vg_11", "vg", "202", (1, 1, 5, 5), "leak"),
            obj("vg_13", "vg", "203", (10, 10, 20, 20), "ball", ["red"]),
        ],
        "regions": [
            reg("vg_10", 301, (0, 0, 200, 160), "a dog on grass"),
            reg("vg_12", 302, (1, 1, 10, 10), "leaked via flickr"),
            reg("vg_13", 303, (10, 10, 20, 20), "a red ball"),
            reg("vg_13", 304, (0, 0, 5, 5), "..."),
            reg("vg_13", 305, (0, 0, 5, 5), ""),
        ],
        "splits": [
            {"dataset": "coco", "split": "test", "image_key": "coco_2", "coco_id": 2, "flickr_id": None,
             "source": "karpathy"},
            {"dataset": "coco", "split": "train", "image_key": "coco_1", "coco_id": 1, "flickr_id": None,
             "source": "karpathy"},
            {"dataset": "flickr30k", "split": "val", "image_key": "flickr30k_99", "coco_id": None,
             "flickr_id": 99, "source": "karpathy"},
        ],
    }
    write_lake(lake, rows)
    return lake, raw
