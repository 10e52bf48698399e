"""Web images (CC3M, CC12M, SBU) through img2dataset, into the folders the lake ingest reads.

img2dataset (the field's downloader: DataComp and LAION used it) writes per shard ``NNNNN.tar``
(``<key>.jpg/.txt/.json``), ``NNNNN.parquet`` (every input row, successes and failures, with
``status`` and ``error_message``) and ``NNNNN_stats.json`` - exactly what ``sql/lake/web_downloads.sql``
reads from ``<source>/images/``: a failed row becomes a quarantined image with img2dataset's status as
its reason (``failed_to_download``, ``failed_to_resize``) and its error in the detail.

The URL list is made by the ingest's own parse of the caption file (``sql/lake/web_tsv_*`` or
``sbu_rows``, then ``sql/prepare/web_url_list.sql``), so img2dataset sees exactly the URLs the ingest
joins back on; it is rebuilt only when the caption file changes. ``incremental_mode="incremental"``:
a shard with a stats file is done, an unfinished one is downloaded again on the next run (the same
input gives the same shards). wandb stays off (``enable_wandb=False``); albumentations' update check
is off through ``NO_ALBUMENTATIONS_UPDATE`` (``xvlm.envdefaults``).

On a cluster the same call runs on img2dataset's ``pyspark`` or ``ray`` distributor
(``distributor=``; docs/prepare.md).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xvlm import fsio
from xvlm.data.lake.sources import max_object_size
from xvlm.data.lake.sqlrun import SqlRunner
from xvlm.data.prepare.catalogue import WebSpec
from xvlm.envdefaults import apply_offline_defaults
from xvlm.errors import BadInput, MissingInput

SAMPLES_PER_SHARD = 10_000


@dataclass(frozen=True)
class ImageSettings:
    """img2dataset's image knobs, from the shards recipe (``resize_max_side``, ``jpeg_quality``)."""

    resize_mode: str = "no"
    image_size: int = 256
    resize_only_if_bigger: bool = True
    encode_quality: int = 90
    skip_reencode: bool = True
    processes: int = 1
    threads: int = 64
    timeout: int = 10
    retries: int = 0
    distributor: str = "multiprocessing"

    @classmethod
    def from_recipe(cls, recipe: Any, **machine: Any) -> ImageSettings:
        """``resize_max_side`` None: the original bytes (``resize_mode="no"``; the shards step resizes);
        else the longer side at most that many pixels, never enlarged."""
        if recipe.resize_max_side is None:
            return cls(resize_mode="no", encode_quality=recipe.jpeg_quality, **machine)
        return cls(resize_mode="keep_ratio_largest", image_size=int(recipe.resize_max_side),
                   resize_only_if_bigger=True, encode_quality=recipe.jpeg_quality, skip_reencode=False, **machine)


def url_list(root: Path, source: str, web: WebSpec, work: Path) -> Path:
    """The Parquet URL list (``url``, ``caption``) of ``source``'s caption file, rebuilt when it changed."""
    captions = root / web.captions
    if not captions.is_file():
        raise MissingInput(f"{captions}: caption file of {source} not found (fetch it first)")
    st = captions.stat()
    stamp = {"file": web.captions, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "layout": web.layout}
    out, stamp_file = work / f"{source}-urls.parquet", work / f"{source}-urls.json"
    if out.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out
    run = SqlRunner.open(threads=2, temp_dir=work)  # a fresh database: no reject table of another file
    try:
        if web.layout == "sbu_json":
            run.create("web_rows", "sbu_rows", file=web.captions, path=captions,
                       max_object_size=max_object_size(captions))
        else:
            run.create("csv_acc", "web_tsv_read", file=web.captions, path=captions)
            run.create("csv_gaps", "csv_gaps", header_lines=0)  # web_tsv_rows' line numbers (as ingest)
            run.create("web_rows", "web_tsv_rows", file=web.captions, layout=web.layout)
        with fsio.atomic_path(out) as tmp:
            SqlRunner(run.con, prefix="prepare").copy_parquet("web_url_list", tmp)
    finally:
        run.close()
    fsio.write_json(stamp_file, stamp)
    return out


@contextlib.contextmanager
def _signals_off_main_thread() -> Iterator[None]:
    """img2dataset installs a SIGINT handler, which Python allows only on the main thread; in a worker
    thread (a Prefect task runner) that call is made a no-op instead of an error."""
    if threading.current_thread() is threading.main_thread():
        yield
        return
    original = signal.signal
    signal.signal = lambda *a, **k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        signal.signal = original


def read_stats(images_dir: Path) -> dict[str, Any]:
    """Totals over img2dataset's ``*_stats.json`` files: count, successes, failures, errors by message."""
    tot: dict[str, Any] = {"shards": 0, "count": 0, "successes": 0, "failed_to_download": 0,
                           "failed_to_resize": 0, "status_dict": {}}
    for p in sorted(images_dir.glob("*_stats.json")):
        s = json.loads(p.read_text())
        tot["shards"] += 1
        for k in ("count", "successes", "failed_to_download", "failed_to_resize"):
            tot[k] += int(s.get(k, 0))
        for k, n in s.get("status_dict", {}).items():
            tot["status_dict"][k] = tot["status_dict"].get(k, 0) + int(n)
    return tot


def download_images(root: Path, source: str, web: WebSpec, settings: ImageSettings) -> dict[str, Any]:
    """Run img2dataset over ``source``'s URLs into ``root/web.images_dir``; returns its totals."""
    apply_offline_defaults()  # NO_ALBUMENTATIONS_UPDATE, WANDB_MODE before img2dataset is imported
    try:
        from img2dataset import download
    except ImportError as exc:
        raise BadInput("img2dataset is not installed: install the 'prepare' extra (pip install -e '.[prepare]')") from exc
    work = root / ".prepare" / "web"
    urls = url_list(root, source, web, work)
    out = root / web.images_dir
    stamp = work / f"{source}-input.json"
    wanted = {"urls_sha256": fsio.sha256_file(urls), "settings": {k: v for k, v in asdict(settings).items()
                                                                  if k in ("resize_mode", "image_size",
                                                                           "resize_only_if_bigger",
                                                                           "encode_quality", "skip_reencode")}}
    # A new URL list (a new release of the caption file) or new image settings: the old shards do not
    # line up with the new input, so start over; otherwise resume (finished shards are kept).
    mode = "incremental"
    if out.exists() and (not stamp.is_file() or json.loads(stamp.read_text()) != wanted):
        mode = "overwrite" if any(out.glob("*_stats.json")) else "incremental"
    fsio.write_json(stamp, wanted)
    with _signals_off_main_thread():
        download(
            url_list=str(urls), output_folder=str(out), input_format="parquet", url_col="url",
            caption_col="caption", output_format="webdataset", processes_count=settings.processes,
            thread_count=settings.threads, resize_mode=settings.resize_mode, image_size=settings.image_size,
            resize_only_if_bigger=settings.resize_only_if_bigger, encode_quality=settings.encode_quality,
            skip_reencode=settings.skip_reencode, number_sample_per_shard=SAMPLES_PER_SHARD,
            timeout=settings.timeout, retries=settings.retries, incremental_mode=mode, enable_wandb=False,
            distributor=settings.distributor, compute_hash="sha256",
        )
    return {"source": source, "images_dir": web.images_dir, **read_stats(out)}
