"""Scale generators: every pre-training source in its real on-disk format, at the real counts.

``python -m bench.scale --scale 1.0 --out DIR [--sources coco vg ...]`` writes DIR in the raw-root layout
the ingest's default config reads (``xvlm/data/lake/config.py``) and ``DIR/counts.json``: the rows the
ingest must report per source and entity (``rows_in``), the planted bad rows, the seconds per source.
Image bytes are not written (16M JPEGs would be ~1.5 TB): ingest runs with ``check_images=False`` and
the web sources get img2dataset parquet indexes only. Nothing here is committed data: it is generated.

Real counts (``common.REAL``; scaled = round(real * scale)): COCO train2017 118,287 images / 591,753
captions / 860,001 instances + val2017 + Karpathy 123,287; VG v1.2 108,077 images / 5,408,689 regions /
3.8M objects / ~2.8M attributes; CC3M 3,318,333; CC12M 12,423,374; SBU 1,000,000; Objects365 v2
1,742,292 images / 25.4M boxes (one JSON object > 4 GiB); OpenImages V6 1,743,042 images / 14,610,229 boxes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bench.scale.cocofmt import write_coco, write_objects365
from bench.scale.common import Counts
from bench.scale.tabular import write_openimages, write_sbu, write_web
from bench.scale.vg import write_vg

SCALE_SOURCES: tuple[str, ...] = ("coco", "vg", "cc3m", "cc12m", "sbu", "objects365", "openimages")


def generate(out: Path, scale: float, sources: list[str] | None = None, seed: int = 0) -> Counts:
    """Write the sources (``coco`` includes Karpathy; ``vg`` links to COCO's ids when both are made)."""
    out = Path(out)
    todo = list(sources or SCALE_SOURCES)
    unknown = set(todo) - set(SCALE_SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; known: {list(SCALE_SOURCES)}")
    counts = Counts()
    seconds: dict[str, float] = {}
    coco_ids = None
    for source in SCALE_SOURCES:
        if source not in todo:
            continue
        t0 = time.perf_counter()
        if source == "coco":
            coco_ids = write_coco(out, scale, seed, counts)
        elif source == "vg":
            write_vg(out, scale, seed, coco_ids, counts)
        elif source in ("cc3m", "cc12m"):
            write_web(out, source, scale, seed, counts)
        elif source == "sbu":
            write_sbu(out, scale, seed, counts)
        elif source == "objects365":
            write_objects365(out, scale, seed, counts)
        else:
            write_openimages(out, scale, seed, counts)
        seconds[source] = round(time.perf_counter() - t0, 2)
    old = json.loads((out / "counts.json").read_text()) if (out / "counts.json").is_file() else {}
    doc = {"scale": scale, "seed": seed, **asdict(counts), "seconds": seconds}
    if old.get("scale") == scale and old.get("seed") == seed:  # generated source by source: merge
        for k in ("rows_in", "planted", "seconds"):
            doc[k] = {**old.get(k, {}), **doc[k]}
    (out / "counts.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    return counts
