"""Compare two ``make demo`` outputs: same numbers, same checkpoints, same MLflow contents?

    .venv/bin/python scripts/compare_demo_runs.py OUT_A OUT_B [--stdout-a A.txt --stdout-b B.txt]

For a refactor that must not change behaviour (issue #18): the final pre-training checkpoint's tensors
(bitwise), every MLflow run by (experiment, run name) with its params, its metrics (every logged point:
key, step, value) and its tags, and, when given, the printed summary lines with run ids, hashes and paths
masked. Things that differ by nature are masked: run ids, timestamps, absolute paths, the git commit,
hashes of folders named by run id. Prints one line per difference and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path

import torch

VOLATILE_TAGS = {"git_commit", "mlflow.source.name", "mlflow.source.git.commit", "mlflow.user",
                 "mlflow.source.type", "mlflow.runName", "mlflow.log-model.history", "mlflow.parentRunId"}
ID = re.compile(r"\b[0-9a-f]{32}\b")
HASH16 = re.compile(r"\b[0-9a-f]{16}\b")


def _mask(value: str, roots: list[str]) -> str:
    for r in roots:
        value = value.replace(r, "<OUT>")
    return HASH16.sub("<H16>", ID.sub("<ID>", value))


def mlflow_contents(out: Path) -> dict[tuple[str, str], dict[str, object]]:
    con = sqlite3.connect(out / "mlflow.db")
    roots = [str(out), str(out.resolve())]
    try:
        runs = con.execute("select r.run_uuid, e.name, r.name, r.status from runs r join experiments e "
                           "on r.experiment_id = e.experiment_id").fetchall()
        result: dict[tuple[str, str], dict[str, object]] = {}
        for run, exp, name, status in runs:
            params = dict(con.execute("select key, value from params where run_uuid = ?", (run,)))
            metrics = sorted(con.execute("select key, step, value from metrics where run_uuid = ? and key not "
                                         "like 'system/%' and key not like 'time/%'", (run,)))
            tags = {k: _mask(v, roots) for k, v in con.execute("select key, value from tags where run_uuid = ?",
                                                               (run,)) if k not in VOLATILE_TAGS}
            key = (exp, name)
            if key in result:
                raise SystemExit(f"{out}: two runs named {key}; compare a single demo run per output")
            result[key] = {"status": status, "params": {k: _mask(v, roots) for k, v in params.items()},
                           "metrics": [(k, s, v) for k, s, v in metrics
                                       if not k.endswith(("samples_per_s", "tokens_per_s", "wall_s"))],
                           "tags": tags}
        return result
    finally:
        con.close()


def _checkpoint(out: Path) -> dict[str, torch.Tensor]:
    latest = sorted((out / "train" / "checkpoints").glob("step-*.pt"))[-1]
    return torch.load(latest, map_location="cpu", weights_only=True)["model"]


def _summary(path: Path | None, out: Path) -> list[str]:
    if path is None:
        return []
    roots = [str(out), str(out.resolve())]
    return [_mask(line, roots) for line in path.read_text().splitlines()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--stdout-a", type=Path)
    ap.add_argument("--stdout-b", type=Path)
    args = ap.parse_args()
    diffs: list[str] = []
    ca, cb = _checkpoint(args.a), _checkpoint(args.b)
    if ca.keys() != cb.keys():
        diffs.append(f"checkpoint keys differ: {sorted(set(ca) ^ set(cb))}")
    diffs += [f"checkpoint tensor {k} differs" for k in ca.keys() & cb.keys() if not torch.equal(ca[k], cb[k])]
    ma, mb = mlflow_contents(args.a), mlflow_contents(args.b)
    diffs += [f"MLflow run {k} only in {args.a}" for k in ma.keys() - mb.keys()]
    diffs += [f"MLflow run {k} only in {args.b}" for k in mb.keys() - ma.keys()]
    for key in sorted(ma.keys() & mb.keys()):
        ra, rb = ma[key], mb[key]
        for part in ("status", "params", "tags"):
            if ra[part] != rb[part]:
                if isinstance(ra[part], dict):
                    bad = sorted(k for k in ra[part].keys() | rb[part].keys() if ra[part].get(k) != rb[part].get(k))
                    diffs.append(f"MLflow run {key} {part} differ: " + "; ".join(
                        f"{k}: {ra[part].get(k)!r} vs {rb[part].get(k)!r}" for k in bad))
                else:
                    diffs.append(f"MLflow run {key} {part}: {ra[part]!r} vs {rb[part]!r}")
        if ra["metrics"] != rb["metrics"]:
            sa, sb = set(ra["metrics"]), set(rb["metrics"])
            diffs.append(f"MLflow run {key} metrics differ: {len(sa - sb)} points only in A, {len(sb - sa)} only "
                         f"in B, e.g. {sorted(sa - sb)[:3]} vs {sorted(sb - sa)[:3]}")
    la, lb = _summary(args.stdout_a, args.a), _summary(args.stdout_b, args.b)
    if la != lb:
        diffs += [f"printed line differs: {x!r} vs {y!r}" for x, y in zip(la, lb, strict=False) if x != y]
        if len(la) != len(lb):
            diffs.append(f"printed {len(la)} vs {len(lb)} lines")
    n_points = sum(len(r["metrics"]) for r in ma.values())
    print(f"compared: {len(ca)} checkpoint tensors, {len(ma)} MLflow runs ({n_points} metric points), "
          f"{len(la)} printed lines")
    for d in diffs:
        print(d)
    print("identical" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
