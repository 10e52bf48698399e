"""Visual Genome: ``image_data.json``, ``region_descriptions.json``, ``objects.json``, ``attributes.json``.

Formats follow datasets-and-tools.md §1.4: four top-level arrays, one element per image, same order.
Region records use ``width``/``height`` and the per-image key ``id``; objects use ``w``/``h`` and a ``names``
*list*; in ``attributes.json`` some objects have no ``attributes`` key at all. Some VG images are COCO images
(``coco_id``): here they are byte-identical copies of COCO images written by :mod:`.coco`.
"""

from __future__ import annotations

from typing import Any

from .common import Corpus, Item, make_items, unique_ints

VG_URL = "https://cs.stanford.edu/people/rak248/VG_100K/{}.jpg"
IMAGE_DATA = "vg/image_data.json"
REGIONS = "vg/region_descriptions.json"
OBJECTS = "vg/objects.json"
ATTRIBUTES = "vg/attributes.json"


def write_vg(ctx: Corpus, n: int, n_shared: int = 3) -> None:
    """Write VG; the first ``n_shared`` entries (after shuffling) reuse COCO images, one a Karpathy test image."""
    rng = ctx.rng("vg")
    coco: dict[int, tuple[str, dict, Item]] = ctx.shared["coco_records"]
    ksplit: dict[int, str] = ctx.shared["karpathy_split"]
    leaked = sorted(i for i, s in ksplit.items() if s == "test" and coco[i][0] == "train2017")
    others = sorted(i for i in coco if i not in leaked)
    pick = [others[int(j)] for j in rng.choice(len(others), size=n_shared - 1, replace=False)]
    shared_ids = leaked[:1] + pick
    fresh = make_items(rng, n - n_shared, photo_every=7, photo_offset=1)
    entries: list[tuple[Item, int | None]] = [(coco[c][2], c) for c in shared_ids] + [(it, None) for it in fresh]
    order = [int(k) for k in rng.permutation(len(entries))]
    entries = [entries[k] for k in order]
    image_ids = sorted(unique_ints(rng, n, 1, 2_420_000))  # VG ids increase along the file
    region_ids = iter(unique_ints(rng, 12 * n, 1, 5_500_000))
    object_ids = iter(unique_ints(rng, 12 * n, 1, 4_000_000))

    image_data, regions, objects, attributes = [], [], [], []
    for (item, coco_id), vid in zip(entries, image_ids, strict=True):
        image_data.append({
            "width": item.width, "url": VG_URL.format(vid), "height": item.height, "image_id": vid,
            "coco_id": coco_id, "flickr_id": int(rng.integers(1_000_000, 9_000_000_000)) if rng.random() < 0.5 else None,
        })
        regs = [
            {"region_id": next(region_ids), "width": b[2], "height": b[3], "image_id": vid, "phrase": p, "y": b[1], "x": b[0]}
            for p, b in item.regions
        ]
        regs.append({
            "region_id": next(region_ids), "width": item.width - 2, "height": item.height - 2, "image_id": vid,
            "phrase": item.captions[0].rstrip(".").lower(), "y": 1, "x": 1,
        })
        regions.append({"regions": regs, "id": vid})
        objs, attrs = [], []
        for label, attr_list, b in item.objects:
            base: dict[str, Any] = {
                "object_id": next(object_ids), "x": b[0], "y": b[1], "w": b[2], "h": b[3],
                "names": [label], "synsets": [f"{label}.n.01"],
            }
            objs.append({**base, "merged_object_ids": []})
            attrs.append({**base, "attributes": list(attr_list)})
        objects.append({"image_id": vid, "objects": objs})
        attributes.append({"image_id": vid, "attributes": attrs})

    missing_or_corrupt = _plant_quirks(ctx, rng, entries, image_data, regions, objects, attributes)
    for pos, ((item, _), rec) in enumerate(zip(entries, image_data, strict=True)):
        path = f"vg/VG_100K/{rec['image_id']}.jpg"
        kind = missing_or_corrupt.get(pos)
        if kind == "missing":
            continue
        if kind == "truncated":
            ctx.write(path, item.jpeg[: len(item.jpeg) // 2])
        elif kind == "empty":
            ctx.write(path, b"")
        else:
            ctx.write(path, item.jpeg)
    ctx.write_json(IMAGE_DATA, image_data)
    ctx.write_json(REGIONS, regions)
    ctx.write_json(OBJECTS, objects)
    ctx.write_json(ATTRIBUTES, attributes)


def _plant_quirks(
    ctx: Corpus, rng: Any, entries: list[tuple[Item, int | None]], image_data: list[dict],
    regions: list[dict], objects: list[dict], attributes: list[dict],
) -> dict[int, str]:
    q = ctx.quirks
    for pos, rec in enumerate(image_data):
        if rec["coco_id"] is not None:
            cid = rec["coco_id"]
            split = ctx.shared["coco_records"][cid][0]
            leak = ctx.shared["karpathy_split"].get(cid) == "test"
            q.add(
                "vg", IMAGE_DATA, f"[{pos}]", "coco_vg_shared_image", "keep:dedup_later",
                f"same JPEG bytes as coco/{split}/{cid:012d}.jpg" + (" (a Karpathy test image: leak)" if leak else ""),
                image_id=rec["image_id"], coco_id=cid, image_file=f"vg/VG_100K/{rec['image_id']}.jpg",
                coco_image_file=f"coco/{split}/{cid:012d}.jpg",
            )
    fresh = [p for p, (_, c) in enumerate(entries) if c is None]
    # Distinct images for each box/text quirk and each file quirk, so one quarantine never hides another.
    chosen = [fresh[int(k)] for k in rng.choice(len(fresh), size=10, replace=False)]
    neg, out, over, empty, punct, zero, noattr, *files = chosen

    r = regions[neg]["regions"][0]
    r["x"], r["width"] = -7, r["x"] + r["width"] + 7  # right edge unchanged
    q.add("vg", REGIONS, f"[{neg}].regions[0]", "negative_box", "clip",
          "x is negative but the box overlaps the image; clip to the image", image_id=regions[neg]["id"], region_id=r["region_id"])
    r = regions[out]["regions"][0]
    r.update({"x": 3, "y": -904, "height": 25, "phrase": "a cloud in the sky."})
    q.add("vg", REGIONS, f"[{out}].regions[0]", "out_of_image_box", "quarantine:box_outside_image",
          "y=-904, y+height<0: entirely above the image", image_id=regions[out]["id"], region_id=r["region_id"])
    r = regions[over]["regions"][0]
    r["width"] = image_data[over]["width"] - r["x"] + 9
    q.add("vg", REGIONS, f"[{over}].regions[0]", "out_of_image_box", "clip",
          "x+width exceeds the image width by 9 px; clip to the image", image_id=regions[over]["id"], region_id=r["region_id"])
    for pos, text, why in ((empty, "", "empty phrase"), (punct, ".", "punctuation-only phrase, empty after pre_caption")):
        r = regions[pos]["regions"][0]
        r["phrase"] = text
        q.add("vg", REGIONS, f"[{pos}].regions[0]", "empty_caption", "quarantine:empty_text", why,
              image_id=regions[pos]["id"], region_id=r["region_id"])
    for fname, key, arr in ((OBJECTS, "objects", objects), (ATTRIBUTES, "attributes", attributes)):
        o = arr[zero][key][0]
        o["h"] = 0
        q.add("vg", fname, f"[{zero}].{key}[0]", "zero_size_box", "quarantine:zero_size_box",
              "object h=0", image_id=arr[zero]["image_id"], object_id=o["object_id"])
    for j in range(min(2, len(attributes[noattr]["attributes"]))):
        o = attributes[noattr]["attributes"][j]
        del o["attributes"]
        q.add("vg", ATTRIBUTES, f"[{noattr}].attributes[{j}]", "vg_object_without_attributes", "keep:attributes_null",
              "object has no 'attributes' key (the HF normaliser sets None)", image_id=attributes[noattr]["image_id"],
              object_id=o["object_id"])

    plan = dict(zip(files, ("truncated", "empty", "missing"), strict=True))
    for pos, kind in plan.items():
        vid = image_data[pos]["image_id"]
        img = f"vg/VG_100K/{vid}.jpg"
        if kind == "missing":
            q.add("vg", IMAGE_DATA, f"[{pos}]", "missing_image", "quarantine:missing_image_file",
                  "listed in image_data.json but no file on disk", image_id=vid, image_file=img)
        else:
            q.add("vg", IMAGE_DATA, f"[{pos}]", "corrupt_jpeg", "quarantine:corrupt_image",
                  "JPEG truncated to half its bytes" if kind == "truncated" else "0-byte file",
                  image_id=vid, image_file=img)
    return plan
