"""``python -m xvlm.data.shards LAKE RAW OUT [--recipe demo] [--lake-db PATH]``: one build, no Prefect.

Prints the totals as JSON. Used by the kill-and-resume tests (run in a subprocess, SIGKILLed, rerun)
and handy for a quick local build; the CLI proper is ``xvlm shards`` (flows/).
"""

from __future__ import annotations

import argparse
import json

from xvlm.data.shards.build import build_shards


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m xvlm.data.shards", description=__doc__)
    ap.add_argument("lake_root")
    ap.add_argument("raw_root")
    ap.add_argument("out_root")
    ap.add_argument("--recipe", default="demo", help="recipe name (recipes/<name>.json) or path")
    ap.add_argument("--lake-db", default=None, help="add the samples/manifest views to this lake.duckdb")
    ap.add_argument("--workers", type=int, default=4, help="probe threads")
    ap.add_argument("--allow-missing", action="append", default=[], metavar="SOURCE",
                    help="build without this recipe source if the lake lacks it (repeatable; recorded)")
    a = ap.parse_args(argv)
    totals = build_shards(a.lake_root, a.raw_root, a.out_root, a.recipe, workers=a.workers, lake_db=a.lake_db,
                          allow_missing=a.allow_missing)
    print(json.dumps({k: v for k, v in totals.items() if k != "samples"}, sort_keys=True))


if __name__ == "__main__":
    main()
