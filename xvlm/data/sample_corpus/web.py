"""Web alt-text sources (CC3M, CC12M, SBU) and their img2dataset output folders.

Input formats (datasets-and-tools.md §1.5-1.7): CC3M ``caption<TAB>url`` without header, CC12M the reverse
``url<TAB>caption``, SBU one JSON object of parallel lists. The downloaded images exist only inside
img2dataset-style folders (§3.1): ``00000.tar`` (``<key>.jpg/.txt/.json``, written with webdataset's
``TarWriter`` exactly as img2dataset does), ``00000.parquet`` with one row per *input* row including
failures, and ``00000_stats.json``. Keys are ``shard * 10000 + row`` as 9 digits (``oom_shard_count=5``).
URLs use the reserved ``.invalid`` TLD, so nothing is ever fetched.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .common import Corpus, Item, make_items

# img2dataset's metadata schema: input columns (url, caption) then the columns the downloader appends.
PARQUET_SCHEMA = pa.schema([
    ("url", pa.string()),
    ("caption", pa.string()),
    ("key", pa.string()),
    ("status", pa.string()),
    ("error_message", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("exif", pa.string()),
    ("sha256", pa.string()),
])
ERRORS = ("HTTP Error 404: Not Found", "HTTP Error 410: Gone", "The read operation timed out")


def alt_text(item: Item, rng: np.random.Generator) -> str:
    """Lower-cased alt-text style caption (one of the item's captions, no final period)."""
    return item.captions[int(rng.integers(len(item.captions)))].rstrip(".").lower()


def write_img2dataset(
    ctx: Corpus, folder: str, urls: list[str], caps: list[str], items: list[Item], failed: dict[int, str],
    source: str,
) -> None:
    """Write one img2dataset shard (00000) for the given input rows; rows in ``failed`` are not in the tar."""
    import webdataset as wds

    rows: dict[str, list] = {f.name: [] for f in PARQUET_SCHEMA}
    status: dict[str, int] = {}
    tar_buf = io.BytesIO()
    # Fixed mtime/user/group: webdataset's own knob for reproducible tars.
    with wds.TarWriter(tar_buf, user="bigdata", group="bigdata", mtime=0.0, encoder=False) as tw:
        for i, (url, cap, item) in enumerate(zip(urls, caps, items, strict=True)):
            key = f"{0:05d}{i:04d}"
            err = failed.get(i)
            if err is not None:
                meta = {"url": url, "caption": cap, "key": key, "status": "failed_to_download", "error_message": err,
                        "width": None, "height": None, "original_width": None, "original_height": None,
                        "exif": None, "sha256": None}
                status[err] = status.get(err, 0) + 1
                ctx.quirks.add(source, f"{folder}/00000.parquet", str(i), "failed_download",
                               "quarantine:failed_to_download",
                               f"status failed_to_download ({err}); row absent from 00000.tar", url=url, key=key)
            else:
                jpeg = item.jpeg
                meta = {"url": url, "caption": cap, "key": key, "status": "success", "error_message": None,
                        "width": item.width, "height": item.height, "original_width": item.width,
                        "original_height": item.height, "exif": "{}", "sha256": hashlib.sha256(jpeg).hexdigest()}
                status["success"] = status.get("success", 0) + 1
                tw.write({"__key__": key, "jpg": jpeg, "txt": cap.encode("utf-8"),
                          "json": json.dumps(meta, indent=4).encode("utf-8")})
            for k in rows:
                rows[k].append(meta[k])
    ctx.write(f"{folder}/00000.tar", tar_buf.getvalue())
    pq_buf = io.BytesIO()
    pq.write_table(pa.table(rows, schema=PARQUET_SCHEMA), pq_buf, compression="snappy")
    ctx.write(f"{folder}/00000.parquet", pq_buf.getvalue())
    ok = status.get("success", 0)
    stats = {
        "count": len(urls), "successes": ok, "failed_to_download": len(urls) - ok, "failed_to_resize": 0,
        "duration": 0.0, "start_time": 0.0, "end_time": 0.0, "status_dict": dict(sorted(status.items())),
    }
    ctx.write(f"{folder}/00000_stats.json", json.dumps(stats, indent=4).encode("utf-8"))


def _failures(rng: np.random.Generator, n: int, k: int, avoid: set[int]) -> dict[int, str]:
    pool = [i for i in range(n) if i not in avoid]
    picks = sorted(int(pool[j]) for j in rng.choice(len(pool), size=min(k, len(pool)), replace=False))
    return {i: ERRORS[j % len(ERRORS)] for j, i in enumerate(picks)}


def write_cc3m(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("cc3m")
    items = make_items(rng, n, photo_every=8, photo_offset=2)
    urls = [f"http://sample.invalid/cc3m/{i}.jpg" for i in range(n)]
    caps = [alt_text(it, rng) for it in items]
    empty_row, quote_row, dup_row = 5, 9, 13
    caps[empty_row] = ""
    caps[quote_row] = '18" wheels on a ' + caps[quote_row]
    tsv = "TSV row, 0-based, no header"
    ctx.quirks.add("cc3m", "cc3m/Train_GCC-training.tsv", str(empty_row), "empty_caption", "quarantine:empty_text",
                   f"empty caption ({tsv})", url=urls[empty_row])
    ctx.quirks.add("cc3m", "cc3m/Train_GCC-training.tsv", str(quote_row), "unbalanced_quote",
                   "keep:parse_without_quoting", f'caption has one unbalanced " ({tsv}); CSV quoting must be off',
                   url=urls[quote_row])
    ctx.write("cc3m/Train_GCC-training.tsv", "".join(f"{c}\t{u}\n" for c, u in zip(caps, urls, strict=True)).encode())
    ctx.shared["cc3m_dup"] = (dup_row, urls[dup_row], items[dup_row])
    failed = _failures(rng, n, 3, {empty_row, quote_row, dup_row})
    write_img2dataset(ctx, "cc3m/images", urls, caps, items, failed, "cc3m")


def write_cc12m(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("cc12m")
    items = make_items(rng, n, photo_every=8, photo_offset=5)
    urls = [f"http://sample.invalid/cc12m/{i}.jpg" for i in range(n)]
    caps = [alt_text(it, rng) for it in items]
    dup_row, person_row = 7, 2
    src_row, url, item = ctx.shared["cc3m_dup"]
    urls[dup_row], items[dup_row] = url, item  # same URL -> same downloaded bytes
    caps[dup_row] = alt_text(item, rng)
    ctx.quirks.add("cc12m", "cc12m/cc12m.tsv", str(dup_row), "cc3m_cc12m_duplicate_url", "keep:dedup_later",
                   f"URL also in cc3m/Train_GCC-training.tsv row {src_row} (TSV rows 0-based, no header)",
                   url=url, cc3m_row=src_row)
    caps[person_row] = "<PERSON> posing with " + caps[person_row]
    ctx.quirks.add("cc12m", "cc12m/cc12m.tsv", str(person_row), "person_placeholder", "keep:rewrite_person",
                   "caption contains <PERSON>; pre_caption rewrites it to 'person'", url=urls[person_row])
    ctx.write("cc12m/cc12m.tsv", "".join(f"{u}\t{c}\n" for u, c in zip(urls, caps, strict=True)).encode())
    failed = _failures(rng, n, 2, {dup_row, person_row})
    write_img2dataset(ctx, "cc12m/images", urls, caps, items, failed, "cc12m")


def write_sbu(ctx: Corpus, n: int) -> None:
    rng = ctx.rng("sbu")
    items = make_items(rng, n, photo_every=8, photo_offset=4)
    urls = [f"http://sample.invalid/sbu/{i}.jpg" for i in range(n)]
    caps = [alt_text(it, rng).capitalize() for it in items]
    users = [f"{int(rng.integers(10_000_000, 99_999_999))}@N0{int(rng.integers(0, 8))}" for _ in range(n)]
    empty_row = 4
    caps[empty_row] = " "
    ctx.quirks.add("sbu", "sbu/sbu-captions-all.json", f"captions[{empty_row}]", "empty_caption",
                   "quarantine:empty_text", "whitespace-only caption", url=urls[empty_row])
    ctx.write_json("sbu/sbu-captions-all.json", {"image_urls": urls, "captions": caps, "user_ids": users})
    failed = _failures(rng, n, 3, {empty_row})
    write_img2dataset(ctx, "sbu/images", urls, caps, items, failed, "sbu")
