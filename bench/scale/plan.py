"""The shard plan of a samples build, projected to bytes: ``python -m bench.scale.plan BUILD_DIR``.

Shards and samples per shard come from the build's ``samples.json`` (the plan the shard flow runs).
Bytes are projected, not measured (no image bytes at scale): the recipe keeps images as downloaded
(``resize_max_side: null`` in ``recipes/16m.json``), so a sample's JPEG is taken at COCO 2017's own
ratio, 0.52 bytes per pixel (train2017: 18.0 GB over 118,287 images averaging 577x484 px), plus the
sample's JSON (~60 B a caption, ~120 B a box) and the 1.5 KB of tar headers of its
two members. With ``resize_max_side`` set, pixels are capped first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

BYTES_PER_PIXEL = 18.0e9 / (118_287 * 577 * 484)
TAR_OVERHEAD = 3 * 512


def plan(build: Path) -> dict:
    doc = json.loads((build / "samples.json").read_text())
    side = doc["recipe"].get("resize_max_side")
    acc: dict[str, list[float]] = {}
    f = pq.ParquetFile(build / "samples.parquet")
    for rg in range(f.num_row_groups):  # one row group at a time: bounded memory at 16M samples
        t = f.read_row_group(rg, columns=["source", "width", "height", "captions", "concepts"])
        w = t["width"].to_numpy().astype(np.float64)
        h = t["height"].to_numpy().astype(np.float64)
        if side is not None:
            k = np.minimum(1.0, side / np.maximum(w, h))
            w, h = w * k, h * k
        cap = pc.list_value_length(t["captions"]).to_numpy(zero_copy_only=False) * 60.0  # ~60 B a caption
        box = pc.list_value_length(t["concepts"]).to_numpy(zero_copy_only=False) * 120.0  # ~120 B a box
        src = t["source"].to_numpy(zero_copy_only=False)
        for s in np.unique(src):
            m = src == s
            a = acc.setdefault(str(s), [0, 0.0, 0.0])
            a[0] += int(m.sum())
            a[1] += float((w[m] * h[m]).sum())
            a[2] += float(cap[m].sum() + box[m].sum() + m.sum() * TAR_OVERHEAD)
    by_source = {s: {"samples": n, "image_gb": round(px * BYTES_PER_PIXEL / 1e9, 1), "json_gb": round(t / 1e9, 2)}
                 for s, (n, px, t) in sorted(acc.items(), key=lambda kv: -kv[1][0])}
    sizes = doc["shard_sizes"]
    total = sum(v["image_gb"] + v["json_gb"] for v in by_source.values())
    return {"n_shards": doc["n_shards"], "samples": sum(sizes), "shard_size": doc["recipe"]["shard_size"],
            "smallest_shard": min(sizes), "largest_shard": max(sizes), "projected_gb": round(total, 1),
            "projected_gb_per_shard": round(total / doc["n_shards"], 2), "by_source": by_source}


if __name__ == "__main__":
    print(json.dumps(plan(Path(sys.argv[1])), indent=1))
