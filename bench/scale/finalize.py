"""Measure the shard build's ``finalize`` (manifest merge, quarantine, stats, audits) at scale, without images.

``python -m bench.scale.finalize --build BUILD --out DIR [--out-jsonl RUNS] [--memory-limit 2GB]``

``BUILD`` is a samples build folder (``samples.json`` + ``samples.parquet``, e.g. from
``bench.scale.measure --samples 16m``); it is only read. ``DIR`` gets a copy of ``samples.json``, a
symlink to ``samples.parquet`` and, for every shard of the plan, what ``write_shard`` leaves: the tar,
the manifest part and the stats file. They are written by the real :func:`~xvlm.data.shards.writer.write_shard`
with two stand-ins, so the tar headers, offsets, manifest part and stats are the real formats:

- the image reader returns the image key's bytes: ``bench.scale.measure.synthetic_probe`` (which the
  samples step of the scale bench runs with) gave each sample ``sha256(key)``, so the writer's
  "changed since the probe" check passes; every ``--quarantine-every``-th sample is a missing image
  (quarantined, so the quarantine path and its audit are exercised too);
- the recipe's resize is off in the copy of the plan handed to the writer (the bytes are not a JPEG)
  and the ``key.json`` member is empty (disk: each sample is then a 1 KB ``.jpg`` member and a
  512-byte ``.json`` member, ~1.5 KB; ~25 GB at 16.8M samples).

A rerun keeps shards already written (their stats file exists). Then ``finalize(DIR, plan)`` runs in
a child process measured like every other stage (``bench.scale.measure.child``: wall, CPU, peak RSS)
and one JSON line (stage ``manifest 16m``) is printed and appended to ``--out-jsonl``, for
``python -m bench.scale.measure --report``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from bench.scale.measure import _du, child


class KeyBytesReader:
    """``ImageReader`` stand-in: an image's bytes are its key (``sha256`` = the synthetic probe's);
    a key whose hash falls in every ``quarantine_every``-th bucket is a missing image."""

    def __init__(self, quarantine_every: int) -> None:
        self.every = quarantine_every

    def read(self, ref: Any) -> bytes:  # noqa: ANN401 - ImageRef
        from xvlm.data.shards.images import ImageReadError

        key = ref.image_key
        if self.every and int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % self.every == 0:
            raise ImageReadError("missing_image", ref.path, "planted by bench.scale.finalize")
        return key.encode()

    def close(self) -> None:
        """Nothing to close (the writer closes only its own reader, not a given one)."""


def synthesize(build: Path, out: Path, quarantine_every: int = 1000) -> dict[str, Any]:
    """Copy the plan into ``out`` and write every shard not yet done; returns counts and seconds."""
    from xvlm.data.shards import writer
    from xvlm.data.shards.build import load_build, pending_shards

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "samples.parquet").exists():
        (out / "samples.parquet").symlink_to((build / "samples.parquet").resolve())
    if not (out / "samples.json").is_file():
        shutil.copyfile(build / "samples.json", out / "samples.json")
    plan = load_build(out)
    todo = pending_shards(out, plan)
    first = next(iter(writer.read_shard_rows(out, todo[0])), None) if todo else None
    if first is not None and first["sha256"] != hashlib.sha256(first["image_key"].encode()).hexdigest():
        raise SystemExit(f"{build}: samples not from bench.scale.measure's synthetic probe (sha256 != sha256(key)): "
                         "every sample would be quarantined changed_since_probe")
    writer.sample_json = lambda row, width, height: b""  # the json member's bytes do not matter here
    wplan = {**plan, "recipe": {**plan["recipe"], "resize_max_side": None}}
    reader = KeyBytesReader(quarantine_every)
    t0 = time.perf_counter()
    for i, shard in enumerate(todo):
        writer.write_shard(out, shard, wplan, reader=reader)
        if i % 100 == 0:
            print(f"shard {shard} ({i + 1}/{len(todo)}) {time.perf_counter() - t0:.0f} s", flush=True)
    return {"n_shards": plan["n_shards"], "written_now": len(todo), "seconds": round(time.perf_counter() - t0, 1)}


def run_finalize(out: Path, memory_limit: str | None) -> dict[str, Any]:
    """The measured stage: ``finalize`` of the build in ``out`` (audits on)."""
    import inspect

    from xvlm.data.shards.build import finalize, load_build

    over = {"memory_limit": memory_limit} if memory_limit else {}
    if over and "memory_limit" not in inspect.signature(finalize).parameters:
        raise SystemExit("this finalize has no memory_limit argument (the in-memory version): drop --memory-limit")
    t = finalize(out, load_build(out), **over)
    return {k: t[k] for k in ("n_shards", "samples_written", "quarantined", "tar_bytes", "audit")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, help="samples build folder (read only)")
    ap.add_argument("--out", type=Path, required=True, help="synthetic shard build folder (written)")
    ap.add_argument("--out-jsonl", type=Path, default=None, help="append the run's JSON line here")
    ap.add_argument("--scale", type=float, default=None,
                    help="default: 'scale' of counts.json in the plan's raw_root (the generator's)")
    ap.add_argument("--quarantine-every", type=int, default=1000, help="every N-th sample a missing image")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit of the audits (finalize's default)")
    ap.add_argument("--label", default="", help="appended to the stage name in the table")
    ap.add_argument("--synth-only", action="store_true", help="write the shards, do not measure")
    ap.add_argument("--child", action="store_true", help="inside the measured process")
    a = ap.parse_args()
    if a.child:
        res = run_finalize(a.out, a.memory_limit)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"result": res, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_kb": ru.ru_maxrss}))
        return
    if a.build is None and not (a.out / "samples.json").is_file():
        ap.error("--build is needed to set up --out")
    syn = synthesize(a.build or a.out, a.out, a.quarantine_every)
    print(json.dumps({"synthesized": syn}), flush=True)
    if a.synth_only:
        return
    plan = json.loads((a.out / "samples.json").read_text())
    counts = Path(plan["raw_root"]) / "counts.json"
    scale = a.scale if a.scale is not None else (json.loads(counts.read_text())["scale"] if counts.is_file() else None)
    before = _du(a.out / "shards")
    mem = ["--memory-limit", a.memory_limit] if a.memory_limit else []
    r = {"stage": f"manifest {plan['recipe']['name']}{a.label}", "scale": scale,
         **child(["--out", str(a.out), *mem], module="bench.scale.finalize")}
    left = sum(p.stat().st_size for f in ("manifest.parquet", "quarantine.parquet", "stats.json", "audit.json")
               if (p := a.out / f).is_file())
    r["disk_mb"] = round(left / 1e6, 1)  # what finalize left
    r["shards_disk_mb"] = round(before / 1e6, 1)
    print(json.dumps(r), flush=True)
    if a.out_jsonl:
        with a.out_jsonl.open("a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
