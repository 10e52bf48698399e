"""CC3M / CC12M TSVs, SBU's parallel-list JSON, their img2dataset indexes, and OpenImages V6 boxes at scale.

Web sources (datasets-and-tools.md §1.5-1.7, §3.1): CC3M ``caption<TAB>url`` and CC12M ``url<TAB>caption``
without header; SBU one object ``{"image_urls", "captions", "user_ids"}``. Each gets img2dataset's
per-shard metadata parquet (``NNNNN.parquet``, one row per input row of the shard, 10,000 rows a shard,
key = shard*10000+row as 9 digits, ~80% ``success``) in the schema the ingest reads; the tars are not
written (no image bytes at scale: the samples bench uses a synthetic probe). Planted bad rows: empty
captions, non-http URLs, repeated URLs, lines with an extra tab (wrong column count), invalid UTF-8.

OpenImages (§1.9): ``oidv6-train-annotations-bbox.csv`` (header, 21 columns, rows sorted by ImageID,
boxes normalised ``XMin,XMax,YMin,YMax``) and the header-less class file. Planted: unknown MIDs,
XMax == XMin, bad ImageIDs, short lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.scale.common import (
    Counts,
    J,
    S,
    batches,
    choose,
    mkparent,
    phrase_pool,
    scaled,
    split_counts,
    take,
    write_arr,
)
from xvlm.data.sample_corpus.detection import OI_COLUMNS
from xvlm.data.sample_corpus.web import ERRORS, PARQUET_SCHEMA

SHARD_ROWS = 10_000


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    raw = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    h, w = raw.tobytes().hex(), 2 * nbytes
    return pa.array([h[i:i + w] for i in range(0, len(h), w)])


def _web_rows(rng: np.random.Generator, s: int, e: int, source: str, pool: pa.Array, counts: Counts
              ) -> tuple[pa.Array, pa.Array, dict[str, np.ndarray]]:
    """URLs and captions of rows ``[s, e)`` and the masks of planted bad rows."""
    k = e - s
    idx = np.arange(s, e)
    url = J("http://i", S(rng.integers(0, 20, k)), f".img.example.invalid/{source}/", S(idx * 7919 % 10**9),
            choose(rng.random(k) < 0.5, ".jpg", "/photo.jpg?w=640"))
    m = {"empty": rng.random(k) < 0.004, "noturl": rng.random(k) < 0.002,
         "dup": (rng.random(k) < 0.003) & (idx > 0), "tabs": rng.random(k) < 0.0005,
         "utf8": rng.random(k) < 0.0001}
    if source == "sbu":  # JSON lists: no lines to break
        m["tabs"][:] = m["utf8"][:] = False
    url = choose(m["noturl"], J("www.example.invalid/", S(idx)), url)
    url = choose(m["dup"], J("http://i0.img.example.invalid/", source, "/", S(np.maximum(0, idx - 1 - rng.integers(0, 50, k)) * 7919 % 10**9), ".jpg"), url)
    cap = take(pool, rng.integers(0, len(pool), k))
    cap = choose(m["empty"], "", cap)
    for kind, mask in m.items():
        counts.plant(source, kind, mask.sum())
    return url, cap, m


def _index_shard(rng: np.random.Generator, folder: Path, shard: int, url: pa.Array, cap: pa.Array,
                 rows: np.ndarray) -> None:
    """img2dataset's ``NNNNN.parquet`` for input rows ``rows`` (their url/caption arrays)."""
    k = len(rows)
    ok = rng.random(k) < 0.8
    err = np.array(ERRORS, dtype=object)[rng.integers(0, len(ERRORS), k)]
    w = rng.choice([640, 500, 800, 1024, 375], k)
    h = rng.choice([480, 375, 600, 768, 500], k)
    sha = _hex(rng, k, 32).to_numpy(zero_copy_only=False)
    dup = ok & (rng.random(k) < 0.01)  # the same photo under two URLs: dedup has work
    sha[dup] = sha[0]
    keys = [f"{shard:05d}{r % SHARD_ROWS:04d}" for r in rows.tolist()]
    t = pa.table({
        "url": url, "caption": cap, "key": keys,
        "status": np.where(ok, "success", "failed_to_download"),
        "error_message": pa.array(err, pa.string(), mask=ok),
        "width": pa.array(w, pa.int32(), mask=~ok), "height": pa.array(h, pa.int32(), mask=~ok),
        "original_width": pa.nulls(k, pa.int32()), "original_height": pa.nulls(k, pa.int32()),
        "exif": pa.nulls(k, pa.string()),
        "sha256": pa.array(sha, pa.string(), mask=~ok),
    }, schema=PARQUET_SCHEMA)
    pq.write_table(t, mkparent(folder / f"{shard:05d}.parquet"), compression="snappy")


def write_web(root: Path, source: str, scale: float, seed: int, counts: Counts) -> None:
    """CC3M / CC12M TSV and its img2dataset index, streamed shard by shard."""
    rng = np.random.default_rng([seed, 3 if source == "cc3m" else 4])
    n = scaled(f"{source}_rows", scale)
    mean = 10.0 if source == "cc3m" else 18.0
    pool = pa.array(phrase_pool(rng, 40_000, 1, 60, mean))
    path = root / ("cc3m/Train_GCC-training.tsv" if source == "cc3m" else "cc12m/cc12m.tsv")
    folder = root / f"{source}/images"
    with mkparent(path).open("wb") as f:
        for s, e in batches(n, SHARD_ROWS):
            url, cap, m = _web_rows(rng, s, e, source, pool, counts)
            line = J(cap, "\t", url) if source == "cc3m" else J(url, "\t", cap)
            line = choose(m["tabs"], J(line, "\textra"), line)
            text = J(line, "\n")
            if m["utf8"].any():  # invalid UTF-8: written as raw bytes, so splice them in per line
                buf = bytearray()
                for t, bad in zip(text.to_pylist(), m["utf8"].tolist(), strict=True):
                    buf += (t[:-1].encode() + b"\xff\xfe\n") if bad else t.encode()
                f.write(bytes(buf))
            else:
                write_arr(f, text)
            keep = ~m["tabs"]
            _index_shard(rng, folder, s // SHARD_ROWS, url.filter(pa.array(keep)), cap.filter(pa.array(keep)),
                         np.arange(s, e)[keep])
    counts.add(source, "images", n)
    counts.add(source, "captions", n)


def write_sbu(root: Path, scale: float, seed: int, counts: Counts) -> None:
    """``sbu-captions-all.json``: the three parallel lists written one after another (same per-shard
    seeds for both passes, so each list is streamed without holding the others)."""
    n = scaled("sbu_rows", scale)
    pool = pa.array([p.capitalize() for p in phrase_pool(np.random.default_rng([seed, 5]), 20_000, 3, 30, 12.0)])
    path = root / "sbu/sbu-captions-all.json"
    folder = root / "sbu/images"

    def rows(s: int, e: int, c: Counts) -> tuple[pa.Array, pa.Array, dict[str, np.ndarray]]:
        return _web_rows(np.random.default_rng([seed, 5, s]), s, e, "sbu", pool, c)

    with mkparent(path).open("wb") as f:
        for key, col in (("image_urls", 0), ("captions", 1)):
            f.write((b"{" if col == 0 else b", ") + f'"{key}": ['.encode())
            for s, e in batches(n, SHARD_ROWS):
                url, cap, _ = rows(s, e, counts if col == 0 else Counts())
                v = url if col == 0 else cap
                write_arr(f, J(choose(np.arange(s, e) > 0, ", ", ""), '"', v, '"'))
                if col == 0:
                    _index_shard(np.random.default_rng([seed, 6, s]), folder, s // SHARD_ROWS, url, cap, np.arange(s, e))
            f.write(b"]")
        f.write(b', "user_ids": [')
        for s, e in batches(n, SHARD_ROWS):
            write_arr(f, J(choose(np.arange(s, e) > 0, ", ", ""), '"', S(np.arange(s, e) * 31 % 99_999_999), '@N00"'))
        f.write(b"]}")
    counts.add("sbu", "images", n)
    counts.add("sbu", "captions", n)


def write_openimages(root: Path, scale: float, seed: int, counts: Counts) -> None:
    rng = np.random.default_rng([seed, 7])
    n = scaled("oi_images", scale)
    n_box = scaled("oi_boxes", scale)
    n_cls = 601
    mids = [f"/m/0{k:05x}" for k in range(n_cls)]
    oi = root / "openimages"
    with mkparent(oi / "oidv6-class-descriptions-boxable.csv").open("w", encoding="utf-8") as f:
        f.write("".join(f'{m},{"Class " + str(k) if k % 50 else chr(34) + "Class, quoted " + str(k) + chr(34)}\n'
                        for k, m in enumerate(mids)))
    image_ids = np.unique(rng.integers(0, 2**63, n + 100, dtype=np.int64))[:n]
    iid = pa.array([f"{v:016x}" for v in image_ids.tolist()])
    per = split_counts(rng, n_box, n, shape=0.7)
    img_of = np.repeat(np.arange(n), per)
    mid_arr = pa.array(mids + ["/m/unknown"])
    good_rows = np.zeros(n, dtype=np.int64)
    with (oi / "oidv6-train-annotations-bbox.csv").open("wb") as f:
        f.write((OI_COLUMNS + "\n").encode())
        for s, e in batches(n_box, 200_000):
            k = e - s
            io = img_of[s:e]
            x0 = np.round(rng.random(k) * 0.8, 6)
            x1 = np.round(np.minimum(1.0, x0 + 0.01 + rng.random(k) * 0.5), 6)
            y0 = np.round(rng.random(k) * 0.8, 6)
            y1 = np.round(np.minimum(1.0, y0 + 0.01 + rng.random(k) * 0.5), 6)
            zero = rng.random(k) < 0.002
            x1 = np.where(zero, x0, x1)
            label = np.where(rng.random(k) < 0.002, n_cls, rng.integers(0, n_cls, k))
            bad_id = rng.random(k) < 0.0005
            short = rng.random(k) < 0.0005
            ids = choose(bad_id, "bad-id!", take(iid, io))
            flags = [S((rng.random(k) < p).astype(np.int8)) for p in (0.6, 0.3, 0.05, 0.05, 0.02)]
            clicks = choose(rng.random(k) < 0.9, J(S(x0), ",", S(x1), ",", S((x0 + x1) / 2), ",", S((x0 + x1) / 2), ",",
                                                    S((y0 + y1) / 2), ",", S((y0 + y1) / 2), ",", S(y0), ",", S(y1)),
                            "-1,-1,-1,-1,-1,-1,-1,-1")
            line = J(ids, ",xclick,", take(mid_arr, label), ",1,", S(x0), ",", S(x1), ",", S(y0), ",", S(y1), ",",
                     flags[0], ",", flags[1], ",", flags[2], ",", flags[3], ",", flags[4], ",", clicks)
            line = choose(short, J(ids, ",xclick,", take(mid_arr, label), ",1"), line)
            write_arr(f, J(line, "\n"))
            ok_row = ~bad_id & ~short
            np.add.at(good_rows, io[ok_row], 1)
            for kind, mask in (("zero_size", zero), ("unknown_label", label == n_cls), ("bad_image_id", bad_id),
                               ("short_line", short)):
                counts.plant("openimages", kind, mask.sum())
    counts.add("openimages", "objects", n_box)
    _write_oi_sizes(oi / "image_sizes.csv", rng, iid)
    # images = distinct ImageIDs among the rows that parsed with a valid id (oi_images.sql)
    counts.add("openimages", "images", int((good_rows > 0).sum()))


def _write_oi_sizes(path: Path, rng: np.random.Generator, iid: pa.Array) -> None:
    """The synthetic image size index (``openimages.image_sizes``: ``ImageID,Width,Height``) standing in
    for the JPEG headers a run without image bytes cannot read. OpenImages ships images with the longer
    side at 1024 px: 4:3 and 3:2 landscape, a fifth portrait."""
    n = len(iid)
    short = np.where(rng.random(n) < 0.6, 768, 683)
    portrait = rng.random(n) < 0.2
    w, h = np.where(portrait, short, 1024), np.where(portrait, 1024, short)
    with path.open("wb") as f:
        f.write(b"ImageID,Width,Height\n")
        for s, e in batches(n, 200_000):
            write_arr(f, J(iid.slice(s, e - s), ",", S(w[s:e]), ",", S(h[s:e]), "\n"))
