"""A tiny raw tree in the real formats (default file names) and the faults of issue #16 planted in it.

``write_base(root)`` writes a few valid records per file for coco, karpathy (COCO file only), vg, cc3m,
objects365 and openimages. Each ``plant_*`` function changes one file in place and returns what the
ingest must do with it; ``tests/data/test_lake_faults.py`` runs them. Everything is generated here,
nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CC3M = "cc3m/Train_GCC-training.tsv"
OI_BOXES = "openimages/oidv6-train-annotations-bbox.csv"
OI_CLASSES = "openimages/oidv6-class-descriptions-boxable.csv"
OI_SIZES = "openimages/image_sizes.csv"  # the optional size index (openimages.image_sizes): no default name
OI_SIZES_HEADER = b"ImageID,Width,Height"
OI_HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
COCO_CAP = {s: f"coco/annotations/captions_{s}.json" for s in ("train2017", "val2017")}
COCO_INST = {s: f"coco/annotations/instances_{s}.json" for s in ("train2017", "val2017")}
VG = {k: f"vg/{k}.json" for k in ("image_data", "region_descriptions", "objects", "attributes")}
O365 = "objects365/zhiyuan_objv2_train.json"
KARPATHY_COCO = "karpathy/dataset_coco.json"


def _json(root: Path, rel: str, doc: Any) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc), encoding="utf-8")


def coco_images(base: int) -> list[dict[str, Any]]:
    return [{"id": base + i, "file_name": f"{base + i:012d}.jpg", "width": 640, "height": 480,
             "coco_url": f"http://images.cocodataset.org/{base + i:012d}.jpg"} for i in range(3)]


def coco_captions_doc(base: int) -> dict[str, Any]:
    return {"images": coco_images(base),
            "annotations": [{"id": base * 10 + i, "image_id": base + i % 3, "caption": f"a photo number {i}"}
                            for i in range(4)]}


def coco_instances_doc(base: int) -> dict[str, Any]:
    return {"images": coco_images(base), "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": base * 10 + i, "image_id": base + i % 3, "bbox": [10.5, 20, 30, 40],
                             "category_id": 1 + i % 2, "iscrowd": 0} for i in range(4)]}


def tsv_lines() -> list[bytes]:
    return [f"caption number {i}\thttp://sample.invalid/cc3m/{i}.jpg".encode() for i in range(6)]


def oi_box_line(image: str, mid: str = "/m/01g317") -> str:
    return f"{image},xclick,{mid},1,0.1,0.5,0.2,0.6,0,0,0,0,0"


def write_base(root: Path) -> Path:
    """Valid files under every default name the faults touch; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for k, split in enumerate(("train2017", "val2017")):
        _json(root, COCO_CAP[split], coco_captions_doc(100 + 100 * k))
        _json(root, COCO_INST[split], coco_instances_doc(100 + 100 * k))
    _json(root, KARPATHY_COCO, {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": f"COCO_val2014_{200 + i:012d}.jpg", "imgid": i, "split": s,
         "cocoid": 200 + i, "sentences": [{"raw": "a photo", "sentid": i}]} for i, s in enumerate(("test", "val", "train"))]})
    _json(root, VG["image_data"], [{"image_id": i, "width": 800, "height": 600, "coco_id": None, "flickr_id": None,
                                    "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg"} for i in (1, 2)])
    _json(root, VG["region_descriptions"], [{"id": i, "regions": [
        {"region_id": 10 * i + k, "image_id": i, "x": 5, "y": 6, "width": 50, "height": 40, "phrase": f"region {k}"}
        for k in range(2)]} for i in (1, 2)])
    _json(root, VG["objects"], [{"image_id": i, "objects": [
        {"object_id": 100 * i + k, "x": 1, "y": 2, "w": 30, "h": 40, "names": ["clock"], "synsets": []}
        for k in range(2)]} for i in (1, 2)])
    _json(root, VG["attributes"], [{"image_id": i, "attributes": [
        {"object_id": 100 * i + k, "names": ["clock"], "attributes": ["green"]} for k in range(2)]} for i in (1, 2)])
    (root / "cc3m").mkdir(parents=True, exist_ok=True)
    (root / CC3M).write_bytes(b"\n".join(tsv_lines()) + b"\n")
    _json(root, O365, {"images": [{"id": 420917, "file_name": "images/v1/patch8/objects365_v1_00420917.jpg",
                                   "width": 769, "height": 512, "url": ""}],
                       "categories": [{"id": 1, "name": "Person"}],
                       "annotations": [{"id": 1, "image_id": 420917, "bbox": [1, 2, 3, 4], "category_id": 1,
                                        "iscrowd": 0, "isfake": 0, "isreflected": 0}]})
    (root / "openimages").mkdir(parents=True, exist_ok=True)
    (root / OI_CLASSES).write_text('/m/01g317,Person\n/m/011k07,"Tortoise, giant"\n/m/0bt9lr,Dog\n')
    (root / OI_BOXES).write_text("\n".join([OI_HEADER, oi_box_line("000002b66c9c498e"),
                                            oi_box_line("000002b66c9c498e", "/m/011k07"),
                                            oi_box_line("00000c4d5e6f7a8b", "/m/0bt9lr")]) + "\n")
    return root


def write_oi_sizes(root: Path, lines: list[bytes], header: bytes = OI_SIZES_HEADER, eol: bytes = b"\n") -> None:
    """The OpenImages size index (``ImageID,Width,Height``) with ``lines`` after its header, as bytes
    (a fault line is written exactly as given)."""
    (root / OI_SIZES).write_bytes(b"".join(ln + eol for ln in [header, *lines]))


def write_downloads(root: Path, tsv: bytes, images_dir: str = "cc3m/images") -> None:
    """img2dataset's metadata parquet for every URL of a caption TSV (``caption<TAB>url``), all
    successful, so that each good line loads an image and its caption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = sorted({ln.split(b"\t")[1].rstrip(b"\r").decode("utf-8", "replace")
                   for ln in tsv.split(b"\n") if ln.count(b"\t") == 1})
    d = root / images_dir
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"url": urls, "key": [f"{i:09d}" for i in range(len(urls))],
                             "status": ["success"] * len(urls), "error_message": [None] * len(urls),
                             "width": [256] * len(urls), "height": [256] * len(urls),
                             "sha256": ["0" * 64] * len(urls)}), d / "00000.parquet")


def edit_json(root: Path, rel: str, fn: Any) -> None:
    p = root / rel
    doc = json.loads(p.read_text(encoding="utf-8"))
    fn(doc)
    p.write_text(json.dumps(doc), encoding="utf-8")
