"""Generate a Visual-Genome-scale ``region_descriptions.json`` for the ingest benchmark.

Why a generator and not a committed file: the real file is ~0.7 GB. This writes the same shape
(one top-level JSON array, one element per image, key ``id`` for the image and ``regions`` with
``region_id, width, height, image_id, phrase, y, x``) at the real counts (108,077 images,
5,408,689 regions by default), with ~0.1% negative / out-of-image boxes like the real file.

Usage: ``python bench/gen_vg_regions.py OUT_DIR [--images 108077] [--regions 5408689] [--seed 0]``
writes ``OUT_DIR/vg/region_descriptions.json``, ``OUT_DIR/vg/image_data.json`` (sizes) and empty
``objects.json`` / ``attributes.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

_WORDS = ["man", "woman", "dog", "cat", "tree", "sky", "cloud", "building", "window", "car", "street", "sign", "table", "chair", "plate", "food", "pizza", "shirt", "hat", "grass", "water", "boat", "train", "bus", "clock", "wall", "floor", "light", "pole", "fence", "leaf", "rock", "snow", "wave", "white", "black", "red", "green", "blue", "yellow", "large", "small", "tall", "short", "wooden", "metal", "glass", "old", "new", "on", "in", "near", "behind", "under", "with", "of", "the", "a", "is", "are", "has", "holding", "wearing", "sitting", "standing"]


def _phrase(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8)))


def generate(out_dir: Path, n_images: int = 108_077, n_regions: int = 5_408_689, seed: int = 0) -> Path:
    """Write the region file (streamed image by image, so memory stays small); returns its path."""
    rng = random.Random(seed)
    vg = out_dir / "vg"
    vg.mkdir(parents=True, exist_ok=True)
    path = vg / "region_descriptions.json"
    per_image, extra = divmod(n_regions, n_images)
    region_id = 1
    sizes: list[tuple[int, int]] = []
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i in range(n_images):
            image_id = i + 1
            w_img, h_img = rng.choice(((800, 600), (500, 333), (1024, 768), (640, 480)))
            sizes.append((w_img, h_img))
            regions = []
            for _ in range(per_image + (1 if i < extra else 0)):
                w = rng.randint(1, w_img // 2)
                h = rng.randint(1, h_img // 2)
                x = rng.randint(0, w_img - w)
                y = rng.randint(0, h_img - h)
                if rng.random() < 0.001:  # the real file has ~5.6K negative coordinates
                    y = -rng.randint(1, 900)
                regions.append({"region_id": region_id, "width": w, "height": h, "image_id": image_id,
                                "phrase": _phrase(rng), "y": y, "x": x})
                region_id += 1
            if i:
                f.write(", ")
            f.write(json.dumps({"regions": regions, "id": image_id}))
        f.write("]")
    with open(vg / "image_data.json", "w", encoding="utf-8") as f:
        json.dump([{"width": w, "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{k + 1}.jpg",
                    "height": h, "image_id": k + 1, "coco_id": None, "flickr_id": None}
                   for k, (w, h) in enumerate(sizes)], f)
    for name in ("objects.json", "attributes.json"):  # the VG source reads them; empty here
        (vg / name).write_text("[]", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--images", type=int, default=108_077)
    ap.add_argument("--regions", type=int, default=5_408_689)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    p = generate(a.out_dir, a.images, a.regions, a.seed)
    print(f"wrote {p} ({p.stat().st_size / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
