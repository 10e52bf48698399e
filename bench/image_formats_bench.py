"""Benchmark: the shard writer's cost when some images are not RGB JPEGs (issue 16, item 5).

    .venv/bin/python bench/image_formats_bench.py [--n 400] [--repeat 5] [--out /tmp/image-formats-bench]

The ``jpg`` field always holds an RGB JPEG: a PNG (or WebP, GIF, grayscale/CMYK JPEG) is re-encoded once
at write time (docs/shards.md, "Image bytes"). The alternative (store such images under their real
extension) would cost what the all-JPEG pass-through costs. This measures what re-encoding adds: the same
N photos (480x360, textured, bench/shards_bench.make_images) as three lakes - 0%, 10% and 100% of them
PNG - each planned once (untimed), then ``write_shards`` (1 thread) timed per lake, rounds interleaved and
rotated (bench/shards_bench.rounds), ratios against the 0% lake within each round; plus the bytes stored.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.shards_bench import make_images, rounds, warm  # noqa: E402
from tests.shards.lakefix import cap, img, write_lake  # noqa: E402
from xvlm.data.shards import Recipe, plan_build, write_shards  # noqa: E402


def make_lake(root: Path, jpegs: Path, rels: list[str], png_every: int | None) -> tuple[Path, Path]:
    """A copy of the photos with every ``png_every``-th one stored as PNG bytes (same name), + its lake."""
    raw, lake = root / "raw", root / "lake"
    shutil.copytree(jpegs, raw)
    for i, rel in enumerate(rels):
        if png_every and i % png_every == 0:
            with Image.open(raw / rel) as im:
                buf = io.BytesIO()
                im.save(buf, format="PNG")
            (raw / rel).write_bytes(buf.getvalue())
    rows = {"images": [img(f"coco_{i}", "coco", rel, 480, 360, coco_id=i) for i, rel in enumerate(rels)],
            "captions": [cap(f"coco_{i}", "coco", str(i), f"photo {i}") for i in range(len(rels))]}
    write_lake(lake, rows)
    return lake, raw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/image-formats-bench"))
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    jpegs = a.out / "jpegs"
    rels = make_images(jpegs, a.n)
    recipe = Recipe(name="fmt", sources=("coco",), shard_size=100, seed=1)
    builds = {}
    for name, every in (("png0", None), ("png10", 10), ("png100", 1)):
        lake, raw = make_lake(a.out / name, jpegs, rels, every)
        out, plan = plan_build(lake, raw, a.out / name / "shards", recipe, workers=2)
        builds[name] = (out, plan, raw)

    def setup(name: str):  # noqa: ANN202
        def f() -> None:
            out, _, raw = builds[name]
            shutil.rmtree(out / "shards", ignore_errors=True)
            warm(raw, rels)
        return f

    def step(name: str):  # noqa: ANN202
        return lambda: write_shards(builds[name][0], builds[name][1])

    wall, cpu = rounds({n: (setup(n), step(n)) for n in builds}, a.repeat)
    for name in ("png10", "png100"):
        r = [w[name] / w["png0"] for w in wall]
        rc = [c[name] / c["png0"] for c in cpu]
        print(f"{name}: writer time vs all-JPEG {statistics.median(r):.2f}x wall (rounds {min(r):.2f}-{max(r):.2f}), "
              f"{statistics.median(rc):.2f}x CPU")
    for name, (out, _, raw) in builds.items():
        src = sum((raw / r).stat().st_size for r in rels)
        tars = sum(p.stat().st_size for p in (out / "shards").glob("*.tar"))
        print(f"{name}: input image bytes {src / 1e6:.1f} MB, shard tar bytes {tars / 1e6:.1f} MB")
    print(f"all-JPEG writer: median {statistics.median(w['png0'] for w in wall):.3f} s wall for {a.n} images")


if __name__ == "__main__":
    main()
