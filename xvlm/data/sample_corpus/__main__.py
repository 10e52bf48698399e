"""``python -m xvlm.data.sample_corpus DIR [--seed N] [--overwrite]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import MANIFEST, write_sample_corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m xvlm.data.sample_corpus", description=__doc__)
    p.add_argument("root", type=Path, help="output directory (must be empty or absent)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty directory")
    args = p.parse_args(argv)
    root = write_sample_corpus(args.root, seed=args.seed, overwrite=args.overwrite)
    n = len(json.loads((root / MANIFEST).read_text())["quirks"])
    print(f"wrote sample corpus to {root} ({n} planted quirks listed in {MANIFEST})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
