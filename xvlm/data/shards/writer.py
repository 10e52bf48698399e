"""One webdataset shard: ``{recipe}-{shard:06d}.tar`` + its manifest part + its stats file (written last).

Byte-identical reruns: samples are written in key order; every tar member has fixed metadata
(mtime 0, uid/gid 0, empty user/group names, mode 0444, ustar format): the bytes of webdataset's
``TarWriter`` with those settings, written by :class:`~xvlm.data.shards.ustar.UstarWriter` (why: ustar.py);
the JSON is ``sort_keys`` with fixed separators and boxes rounded to 1/1000 px; the manifest part is
written by pyarrow without statistics-dependent options. So the bytes depend only on the samples and
the image bytes.

Crash safety: the tar and the manifest part are written to temp names and renamed; the stats file is
renamed into place last, so "stats file exists" <=> "shard complete" (:func:`shard_done`).

Integrity: the stats file's ``tar_digest`` is :func:`~xvlm.data.shards.ustar.tar_digest` (sha256 of
the archive with each member's data replaced by its sha256), not the file's plain sha256: it covers
every byte the same way but reuses the one sha256 of each image that the probe check needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from xvlm import progress
from xvlm.data.shards.images import STORED_AS_IS, ImageReader, ImageReadError, ImageRef, resize_jpeg
from xvlm.data.shards.ustar import UstarWriter, read_members
from xvlm.fsio import atomic_path, output_fault, write_text

SHARD_DIR = "shards"
MANIFEST_SCHEMA = pa.schema([
    ("shard", pa.int32()), ("key", pa.string()), ("tar", pa.string()),
    ("jpg_offset", pa.int64()), ("jpg_size", pa.int64()),
    ("json_offset", pa.int64()), ("json_size", pa.int64()),
    ("n_captions", pa.int32()), ("n_concepts", pa.int32()), ("n_regions", pa.int32()),
    ("n_objects", pa.int32()), ("source", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("sha256", pa.string()),
])
# One encoder for every sample JSON: json.dumps with non-default options builds a new encoder per
# call (a third of sample_json's time); the bytes are the same.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Env hook for the kill-and-resume tests: "<shard>:<point>" SIGKILLs this process at that point.
CRASH_ENV = "XVLM_SHARDS_CRASH_AT"


def shard_name(recipe: str, shard: int) -> str:
    return f"{recipe}-{shard:06d}"


def shard_paths(out: Path, recipe: str, shard: int) -> dict[str, Path]:
    base = Path(out) / SHARD_DIR / shard_name(recipe, shard)
    return {"tar": base.with_name(base.name + ".tar"),
            "manifest": base.with_name(base.name + ".manifest.parquet"),
            "stats": base.with_name(base.name + ".stats.json")}


def shard_done(out: Path, recipe: str, shard: int) -> bool:
    """A shard is done only when its stats file exists (it is written last, atomically)."""
    return shard_paths(out, recipe, shard)["stats"].is_file()


def _crash_point(shard: int | str, point: str) -> None:
    if os.environ.get(CRASH_ENV) == f"{shard}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def sample_json(row: dict[str, Any], width: int, height: int) -> bytes:
    """``key.json``: captions, concepts with boxes in the stored image's pixel frame, size, source."""
    sx, sy = width / row["width"], height / row["height"]
    concepts = []
    for c in row["concepts"]:
        # Rescale to the stored frame, clip to it (float error only: the lake already clipped).
        x0, y0 = max(0.0, c["x"] * sx), max(0.0, c["y"] * sy)
        x1, y1 = min(float(width), (c["x"] + c["w"]) * sx), min(float(height), (c["y"] + c["h"]) * sy)
        concepts.append({"kind": c["kind"], "text": c["text"], "attributes": list(c["attributes"] or []),
                         "box": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                         "source": c["source"]})
    doc = {"key": row["image_key"], "source": row["source"], "sources": list(row["sources"]),
           "captions": list(row["captions"]), "concepts": concepts, "width": width, "height": height,
           "coco_id": row["coco_id"], "merged_keys": list(row["merged_keys"])}
    return _JSON.encode(doc).encode("utf-8")


def read_shard_rows(out: Path, shard: int) -> list[dict[str, Any]]:
    """The shard's samples in key order (the file is sorted by shard, key: row groups are skipped)."""
    t = pq.read_table(Path(out) / "samples.parquet", filters=[("shard", "=", shard)])
    return t.sort_by("image_key").to_pylist()


def write_shard(out: str | Path, shard: int, plan: dict[str, Any], reader: ImageReader | None = None
                ) -> dict[str, Any]:
    """Write shard ``shard`` of the build in ``out`` (plan = ``samples.json``); returns its stats.

    Already-done shards are not rewritten (returns the stored stats). An image missing or changed
    since the probe is quarantined in the stats (reason) and not written.
    """
    out = Path(out)
    recipe = plan["recipe"]
    name = recipe["name"]
    paths = shard_paths(out, name, shard)
    if paths["stats"].is_file():
        return json.loads(paths["stats"].read_text(encoding="utf-8"))
    try:
        paths["tar"].parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (output_fault(exc, paths["tar"].parent) or exc) from exc
    for debris in paths["tar"].parent.glob(f".{shard_name(name, shard)}.*.tmp"):  # left by a killed run
        debris.unlink(missing_ok=True)
    t0 = time.perf_counter()
    own_reader = reader is None
    reader = reader or ImageReader(plan["raw_root"])
    resize, quality = recipe.get("resize_max_side"), int(recipe.get("jpeg_quality", 90))
    rows = read_shard_rows(out, shard)
    quarantine: list[dict[str, str]] = []
    written: list[tuple[dict[str, Any], int, int, int, int, str, int, int]] = []
    # The tar, then its manifest, each renamed into place when complete (xvlm.fsio); a killed run leaves
    # only ``.{name}.*.tmp`` debris (removed above) and no stats file, so the shard is redone. No fsync:
    # bulk data that a rerun rewrites (stats.json, the done marker, is fsync'ed).
    try:
        with atomic_path(paths["tar"], fsync=False) as tmp_tar, open(tmp_tar, "wb", buffering=0) as f:
            tw = UstarWriter(f.fileno())  # not webdataset's TarWriter: same bytes, ~2x faster (ustar.py)
            for i, row in enumerate(progress.track(rows, f"shard {shard:05d}", unit="sample")):
                if i == len(rows) // 2:
                    _crash_point(shard, "mid_tar")
                try:
                    data = reader.read(ImageRef(row["image_key"], row["path"], row["tar_key"]))
                except ImageReadError as exc:
                    quarantine.append({"key": row["image_key"], "reason": exc.reason, "detail": str(exc)})
                    continue
                # The one hash of the image bytes: it proves they are what the probe saw (and deduplicated
                # on). No decode here: the probe decoded these exact bytes.
                digest = hashlib.sha256(data).digest()
                sha = digest.hex()
                if sha != row["sha256"]:
                    quarantine.append({"key": row["image_key"], "reason": "changed_since_probe",
                                       "detail": f"{row['path']}: bytes differ from the probe's sha256"})
                    continue
                w, h = row["width"], row["height"]
                if resize is not None or row["image_format"] != STORED_AS_IS:
                    # The jpg field always holds an RGB JPEG: PNG/WebP/GIF, grayscale and CMYK JPEGs are
                    # re-encoded (images.py); a resize recipe re-encodes everything.
                    data, w, h = resize_jpeg(data, None if resize is None else int(resize), quality)
                    digest = hashlib.sha256(data).digest()
                    sha = digest.hex()
                js = sample_json(row, w, h)
                # Members in TarWriter's order (sorted extensions): jpg, then json. The jpg's digest is
                # reused for the tar digest (no second hash of the image bytes).
                jpg_off, json_off = tw.add_sample(row["image_key"], (("jpg", data), ("json", js)), (digest,))
                written.append((row, len(data), len(js), w, h, sha, jpg_off, json_off))
            tar_digest = tw.close()
        manifest = _manifest_table(shard, paths["tar"].name, written)
        # our own handle: closed even when the write fails (a full disk; build._atomic_parquet)
        with atomic_path(paths["manifest"], fsync=False) as tmp_man, open(tmp_man, "wb") as f:
            pq.write_table(manifest, f, compression="zstd", write_statistics=False)
    finally:
        if own_reader:
            reader.close()
    _crash_point(shard, "before_stats")
    stats = _shard_stats(shard, paths["tar"], tar_digest, written, quarantine, len(rows))
    write_text(paths["stats"], json.dumps(stats, indent=1, sort_keys=True))
    _crash_point(shard, "after_stats")
    stats = {**stats, "seconds": round(time.perf_counter() - t0, 3)}
    return stats


def _manifest_table(shard: int, tar_name: str, written: list) -> pa.Table:
    """Rows of the manifest part: data offsets as written (``UstarWriter.add_sample``)."""
    cols: dict[str, list] = {f.name: [] for f in MANIFEST_SCHEMA}
    for row, jpg_size, json_size, w, h, sha, jpg_off, json_off in written:
        kinds = [c["kind"] for c in row["concepts"]]
        for k, v in (("shard", shard), ("key", row["image_key"]), ("tar", tar_name), ("jpg_offset", jpg_off),
                     ("jpg_size", jpg_size), ("json_offset", json_off), ("json_size", json_size),
                     ("n_captions", len(row["captions"])), ("n_concepts", len(kinds)),
                     ("n_regions", kinds.count("region")), ("n_objects", kinds.count("object")),
                     ("source", row["source"]), ("width", w), ("height", h), ("sha256", sha)):
            cols[k].append(v)
    return pa.table(cols, schema=MANIFEST_SCHEMA)


def _shard_stats(shard: int, tar: Path, tar_digest: str, written: list, quarantine: list[dict[str, str]],
                 n_rows: int) -> dict[str, Any]:
    by_source: dict[str, dict[str, int]] = {}
    for row, *_ in written:
        s = by_source.setdefault(row["source"], {"samples": 0, "captions": 0, "regions": 0, "objects": 0})
        s["samples"] += 1
        s["captions"] += len(row["captions"])
        for c in row["concepts"]:
            s["regions" if c["kind"] == "region" else "objects"] += 1
    if n_rows != len(written) + len(quarantine):
        raise AssertionError(f"shard {shard}: {n_rows} rows != {len(written)} written + {len(quarantine)} quarantined")
    return {"shard": shard, "tar": tar.name, "tar_bytes": tar.stat().st_size, "tar_digest": tar_digest,
            "samples_in": n_rows, "samples_written": len(written), "quarantined": quarantine,
            "image_bytes": sum(n for _, n, *_ in written), "by_source": by_source}


def read_tar_members(tar: Path) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every member (headers only; for the manifest audit)."""
    return read_members(tar)


def read_member(tar: Path, offset: int, size: int) -> bytes:
    """Bytes of a member by manifest offset (what a random-access loader does)."""
    with open(tar, "rb") as f:
        f.seek(offset)
        return f.read(size)


__all__ = ["CRASH_ENV", "MANIFEST_SCHEMA", "SHARD_DIR", "read_member", "read_shard_rows", "read_tar_members",
           "sample_json", "shard_done", "shard_name", "shard_paths", "write_shard"]
