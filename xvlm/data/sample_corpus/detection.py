"""Detection sources: Objects365 v2 (COCO-like JSON) and OpenImages V6 box CSVs.

Objects365 (datasets-and-tools.md §1.8): ``file_name`` is ``images/v1/patchN/objects365_v1_XXXXXXXX.jpg`` but
the tarballs extract to ``train/patchN/...`` (use the last two path components); annotations add ``isfake`` and
``isreflected``; some listed images are absent from the tars. OpenImages (§1.9): header row, MIDs as labels,
boxes normalised to [0,1] and ordered ``XMin,XMax,YMin,YMax``; class names in a header-less CSV.
"""

from __future__ import annotations

from .common import Corpus, Item, make_items, unique_ints

O365_JSON = "objects365/zhiyuan_objv2_train.json"
OI_BOXES = "openimages/oidv6-train-annotations-bbox.csv"
OI_CLASSES = "openimages/oidv6-class-descriptions-boxable.csv"
OI_COLUMNS = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,"
    "IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y"
)
# Real MIDs for the photo labels; made-up but well-formed MIDs for the shape kinds (OpenImages has none).
OI_MIDS: dict[str, tuple[str, str]] = {
    "person": ("/m/01g317", "Person"),
    "cat": ("/m/01yrx", "Cat"),
    "cup": ("/m/02p5f1q", "Coffee cup"),
    "motorcycle": ("/m/04_sv", "Motorcycle"),
    "rocket": ("/m/09rvcxw", "Rocket"),
    "flag": ("/m/03120", "Flag"),
    "camera": ("/m/0dv5r", "Camera"),
    "helmet": ("/m/0zvk5", "Helmet"),
    "tripod": ("/m/073bxn", "Tripod"),
    "galaxy": ("/m/0x5gx1", "Galaxy"),
    "circle": ("/m/0x5c1r", "Circle"),
    "square": ("/m/0x5sq2", "Square"),
    "triangle": ("/m/0x5tr3", "Triangle"),
    "diamond": ("/m/0x5dm4", "Diamond"),
}


def write_objects365(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("objects365")
    items = make_items(rng, n, photo_every=5, photo_offset=6)
    ids = sorted(unique_ints(rng, n, 1, 2_000_000))
    ann_ids = iter(unique_ints(rng, 10 * n, 1, 30_000_000))
    names = sorted({label.title() for it in items for label, _, _ in it.objects})
    cat_id = {name: k + 1 for k, name in enumerate(names)}
    images, anns = [], []
    on_disk: list[tuple[str, Item]] = []
    for item, iid in zip(items, ids, strict=True):
        patch = int(rng.integers(0, 51))
        fname = f"images/v1/patch{patch}/objects365_v1_{iid:08d}.jpg"
        images.append({"height": item.height, "id": iid, "license": 5, "width": item.width, "file_name": fname, "url": ""})
        on_disk.append(("objects365/train/" + "/".join(fname.split("/")[-2:]), item))
        for label, _attrs, (x, y, w, h) in item.objects:
            anns.append({
                "id": next(ann_ids), "iscrowd": 0, "isfake": 0, "area": float(w * h), "isreflected": 0,
                "bbox": [float(x), float(y), float(w), float(h)], "image_id": iid, "category_id": cat_id[label.title()],
            })
    q = ctx.quirks
    miss = n // 2
    q.add("objects365", O365_JSON, f"images[{miss}]", "objects365_missing_image", "quarantine:missing_image_file",
          "listed in the JSON but absent from the patch tarballs (like objv2_ignore_list)",
          image_id=ids[miss], image_file=on_disk[miss][0])
    for pos, field in ((1, "isfake"), (4, "isreflected")):
        anns[pos][field] = 1
        q.add("objects365", O365_JSON, f"annotations[{pos}]", "objects365_fake_or_reflected", "keep:flag_column",
              f"{field}=1 (a depiction / a reflection of the object)", image_id=anns[pos]["image_id"],
              annotation_id=anns[pos]["id"])
    anns[6]["iscrowd"] = 1
    q.add("objects365", O365_JSON, "annotations[6]", "crowd_box", "keep:group_box_no_region_text",
          "iscrowd=1 group box", image_id=anns[6]["image_id"], annotation_id=anns[6]["id"])
    for k, (path, item) in enumerate(on_disk):
        if k != miss:
            ctx.write(path, item.jpeg)
    categories = [{"name": name, "id": cid} for name, cid in cat_id.items()]
    licenses = [{"name": "Creative Commons Attribution 4.0 License", "id": 5, "url": "https://creativecommons.org/licenses/by/4.0/"}]
    ctx.write_json(O365_JSON, {"images": images, "annotations": anns, "categories": categories, "licenses": licenses})


def _f(v: float) -> str:
    return f"{v:.6f}"


def write_openimages(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("openimages")
    items = make_items(rng, n, photo_every=4, photo_offset=0)
    image_ids = sorted(rng.bytes(8).hex() for _ in range(n))
    rows: list[list[str]] = []
    for item, iid in zip(items, image_ids, strict=True):
        ctx.write(f"openimages/train/{iid}.jpg", item.jpeg)
        W, H = item.width, item.height
        for label, _attrs, (x, y, w, h) in item.objects:
            x0, x1, y0, y1 = x / W, (x + w) / W, y / H, (y + h) / H
            xclick = [x0, x1, (x0 + x1) / 2, (x0 + x1) / 2]  # left, right, top, bottom extreme points
            yclick = [(y0 + y1) / 2, (y0 + y1) / 2, y0, y1]
            trunc = int(x == 0 or y == 0 or x + w >= W or y + h >= H)
            rows.append([iid, "xclick", OI_MIDS[label][0], "1", _f(x0), _f(x1), _f(y0), _f(y1), "0", str(trunc),
                         "0", "0", "0", *map(_f, xclick), *map(_f, yclick)])
    q = ctx.quirks
    group = 2
    rows[group][10] = "1"
    q.add("openimages", OI_BOXES, str(group), "crowd_box", "keep:group_box_no_region_text",
          "IsGroupOf=1 (data row, 0-based, header not counted)", image_id=rows[group][0], label=rows[group][2])
    zero = 5
    rows[zero][5] = rows[zero][4]  # XMax == XMin
    q.add("openimages", OI_BOXES, str(zero), "zero_size_box", "quarantine:zero_size_box",
          "XMax == XMin (data row, 0-based, header not counted)", image_id=rows[zero][0], label=rows[zero][2])
    ctx.write(OI_BOXES, (OI_COLUMNS + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode())
    classes = sorted(OI_MIDS.values())
    ctx.write(OI_CLASSES, "".join(f"{mid},{name}\n" for mid, name in classes).encode())
