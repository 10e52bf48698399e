"""Data preparation from nothing: ``prepare(recipe, root)`` fetches, checks and lays out every source.

The pieces (each usable alone; ``flows/prepare.py`` runs them as Prefect tasks, ``xvlm prepare`` calls
:func:`prepare`):

- :mod:`.catalogue` - ``catalogue.json``: per source and recipe the official files, where each member
  goes under the raw root (the layout the lake ingest reads), the licence a user accepts;
- :mod:`.fetch` - resumable HTTP / mirror downloads with size and checksum checks;
- :mod:`.unpack` - archive members into the layout (and the inverse, for building a mirror);
- :mod:`.run` - per-file idempotent preparation, a few files in parallel, the dry run;
- :mod:`.web` - CC3M / CC12M / SBU images through img2dataset, into ``<source>/images/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from xvlm.data.prepare.catalogue import CATALOGUE, Catalogue, RemoteFile, load_catalogue
from xvlm.data.prepare.fetch import FetchError, fetch
from xvlm.data.prepare.run import PrepareReport, fetch_files, prepare_file
from xvlm.data.prepare.unpack import CorruptArchive, build_mirror, pack, unpack
from xvlm.data.prepare.web import ImageSettings, download_images, read_stats
from xvlm.errors import BadInput


def image_settings(recipe: str, processes: int | None = None, threads: int = 64,
                   **extra: Any) -> ImageSettings:
    """img2dataset's settings for ``recipe``: the image knobs of ``recipes/<recipe>.json`` (when there is
    one), processes = this machine's cores unless given."""
    from xvlm.data.shards.recipe import RECIPE_DIR, load_recipe

    machine = {"processes": processes or os.cpu_count() or 1, "threads": threads, **extra}
    if not (RECIPE_DIR / f"{recipe}.json").is_file():
        return ImageSettings(**machine)
    return ImageSettings.from_recipe(load_recipe(recipe), **machine)


def web_images(report: PrepareReport, settings: ImageSettings, sources: list[str] | None = None,
               catalogue: Catalogue | None = None) -> PrepareReport:
    """img2dataset for each web source of the report's recipe whose caption file is in place."""
    cat = catalogue or load_catalogue()
    root = Path(report.root)
    done = {o.key.split("/", 1)[0] for o in report.files if o.status in ("complete", "fetched")}
    pending = {o.key.split("/", 1)[0] for o in report.files if o.status not in ("complete", "fetched")}
    for source in cat.web_sources(report.recipe, sources):
        if source in pending or source not in done:
            report.web_failed[source] = "caption file not in place (see its line above); images not fetched"
            continue
        try:
            report.web[source] = download_images(root, source, cat.web[source], settings)
        except BadInput as exc:
            report.web_failed[source] = str(exc)
    return report


def prepare(recipe: str, root: str | Path, mirror: str | None = None, sources: list[str] | None = None,
            dry_run: bool = False, workers: int = 3, web: bool = True, settings: ImageSettings | None = None,
            retries: int = 5, timeout: float = 60.0, keep_archives: bool = False,
            catalogue: Catalogue | None = None) -> PrepareReport:
    """Fetch and lay out ``recipe``'s files under ``root``, then its web images (``web=False``: not)."""
    report = fetch_files(recipe, root, mirror=mirror, sources=sources, workers=workers, retries=retries,
                         timeout=timeout, keep_archives=keep_archives, dry_run=dry_run, catalogue=catalogue)
    if web and not dry_run:
        web_images(report, settings or image_settings(recipe), sources, catalogue)
    return report


__all__ = [
    "CATALOGUE", "Catalogue", "build_mirror", "CorruptArchive", "FetchError", "ImageSettings", "PrepareReport", "RemoteFile",
    "download_images", "fetch", "fetch_files", "image_settings", "load_catalogue", "pack", "prepare",
    "prepare_file", "read_stats", "unpack", "web_images",
]
