"""CLI: ``python -m bench.scale --scale 0.01 --out DIR [--sources coco vg ...] [--seed 0]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.scale import SCALE_SOURCES, generate


def main() -> None:
    ap = argparse.ArgumentParser(description="Generate the pre-training sources at a scale of the real counts.")
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sources", nargs="+", choices=SCALE_SOURCES)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    generate(a.out, a.scale, a.sources, a.seed)
    print(json.dumps(json.loads((a.out / "counts.json").read_text())["seconds"]))


if __name__ == "__main__":
    main()
