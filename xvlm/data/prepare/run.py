"""``prepare``: fetch, check and lay out every file of a recipe, then the web images; idempotent.

Per file (``catalogue.json``): skipped when its completion marker ``RAW/.prepare/done/<source>/<name>.json``
says what it placed and every placed file is there with that size; else fetched into
``RAW/.prepare/downloads/<source>/<name>`` (resuming a ``.part``, :mod:`.fetch`), checked, unpacked into
the layout (:mod:`.unpack`), the archive removed (``keep_archives`` keeps it) and the marker written
last. A damaged archive is removed and fetched once more. A file with no public link (``manual``) is
taken from the mirror when one is given, else from where the user put it (the archive under
``.prepare/downloads/`` or its files in the layout), else reported with its instructions.

One file failing never stops the others; the report lists each file's outcome, and ``ok`` is false
when any file failed or still needs manual access (the CLI exits 2 then). ``mirror`` replaces every
URL by ``<mirror>/<source>/<name>`` (an ``http(s)://`` base or a local folder): a site cache, or
the tests' local server.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xvlm import fsio, progress
from xvlm.data.prepare.catalogue import Catalogue, RemoteFile, load_catalogue
from xvlm.data.prepare.fetch import FetchError, fetch, part_path, verify
from xvlm.data.prepare.unpack import CorruptArchive, unpack
from xvlm.errors import BadInput

STATE = ".prepare"


@dataclass
class Outcome:
    """What happened to one file: ``complete`` (already there), ``fetched``, ``failed``, ``manual``,
    or in a dry run ``partial`` / ``to-fetch``."""

    key: str
    status: str
    detail: str = ""
    approx_gb: float = 0.0


@dataclass
class PrepareReport:
    recipe: str
    root: str
    dry_run: bool = False
    files: list[Outcome] = field(default_factory=list)
    web: dict[str, dict[str, Any]] = field(default_factory=dict)
    web_failed: dict[str, str] = field(default_factory=dict)
    disk: dict[str, float] = field(default_factory=dict)
    licences: dict[str, str] = field(default_factory=dict)  # source -> the terms a user accepts

    @property
    def ok(self) -> bool:
        return not self.web_failed and all(o.status in ("complete", "fetched") for o in self.files)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.files:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    def lines(self) -> list[str]:
        """One line per file that is not simply done, the web totals, and a summary line."""
        lines = []
        for o in self.files:
            if o.status in ("failed", "manual") or self.dry_run:
                size = f" (~{o.approx_gb:g} GB)" if self.dry_run and o.approx_gb else ""
                lines.append(f"{o.status:<9} {o.key}{size}" + (f": {o.detail}" if o.detail else ""))
        for source, s in self.web.items():
            lines.append(f"web       {source}: {s['successes']:,} of {s['count']:,} images downloaded "
                         f"(failed_to_download {s['failed_to_download']:,}, failed_to_resize "
                         f"{s['failed_to_resize']:,}) in {s['shards']} shards at {s['images_dir']}")
        for source, err in self.web_failed.items():
            lines.append(f"failed    {source} images: {err}")
        c = self.counts()
        summary = ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
        if self.dry_run:
            lines += [f"terms     {s}: {text}" for s, text in self.licences.items()]
            d = self.disk
            if d["need_gb"] > d["free_gb"]:
                lines.append(f"warning: ~{d['need_gb']:,.0f} GB needed but only {d['free_gb']:,.0f} GB free "
                             f"under {self.root}")
            lines.append(f"dry run, recipe {self.recipe}: {summary}; would download ~{d['download_gb']:,.1f} GB "
                         f"of files and ~{d['web_gb']:,.1f} GB of web images; needs ~{d['need_gb']:,.1f} GB "
                         f"free under {self.root} (estimates), {d['free_gb']:,.1f} GB free now")
        else:
            lines.append(f"prepare {self.recipe}: {summary}" + ("" if self.ok else " - incomplete, see above"))
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "root": self.root, "ok": self.ok, "counts": self.counts(),
                "files": [o.__dict__ for o in self.files], "web": self.web, "web_failed": self.web_failed}


def source_url(f: RemoteFile, mirror: str | None) -> str | None:
    """Where ``f`` is fetched from: its URL, or ``<mirror>/<source>/<name>``."""
    if mirror is None:
        return f.url
    if re.match(r"^https?://", mirror):
        return f"{mirror.rstrip('/')}/{urllib.parse.quote(f.source)}/{urllib.parse.quote(f.name)}"
    return str(Path(mirror.removeprefix("file://")) / f.source / f.name)


def marker_path(root: Path, f: RemoteFile) -> Path:
    return root / STATE / "done" / f.source / f"{f.name}.json"


def download_path(root: Path, f: RemoteFile) -> Path:
    return root / STATE / "downloads" / f.source / f.name


def is_complete(root: Path, f: RemoteFile) -> bool:
    """The marker is there and every file it lists is present with its recorded size."""
    m = marker_path(root, f)
    if not m.is_file():
        return False
    placed = json.loads(m.read_text()).get("placed", {})
    for rel, size in placed.items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def _given_by_hand(root: Path, f: RemoteFile) -> dict[str, int] | None:
    """The files of a manual entry when the user already put them in the layout, else None."""
    placed: dict[str, int] = {}
    for target in f.place.values():
        p = root / target
        if target.endswith("/"):
            files = [q for q in p.rglob("*") if q.is_file()] if p.is_dir() else []
            if not files:
                return None
            placed.update({q.relative_to(root).as_posix(): q.stat().st_size for q in files})
        elif p.is_file():
            placed[target] = p.stat().st_size
        else:
            return None
    return placed


def _mark(root: Path, f: RemoteFile, url: str | None, placed: dict[str, int], how: str) -> None:
    fsio.write_json(marker_path(root, f), {"source": f.source, "name": f.name, "url": url, "how": how,
                                           "placed": placed})


def prepare_file(root: Path, f: RemoteFile, mirror: str | None = None, retries: int = 5,
                 timeout: float = 60.0, keep_archives: bool = False) -> Outcome:
    """Bring one file into the layout (see the module docstring); never raises for bad input."""
    if is_complete(root, f):
        return Outcome(f.key, "complete")
    url = source_url(f, mirror)
    dl = download_path(root, f)
    try:
        if url is None and not dl.is_file():
            placed = _given_by_hand(root, f)
            if placed is None:
                return Outcome(f.key, "manual", f.manual or "no public link")
            _mark(root, f, None, placed, "given by hand")
            return Outcome(f.key, "complete", "given by hand")
        for attempt in (1, 2):
            if dl.is_file():  # left by an earlier run (or put there by the user): check it again
                try:
                    verify(dl, f.size, f.sha256, f.md5, f.key)
                except FetchError:
                    dl.unlink()
            if not dl.is_file():
                if url is None:
                    return Outcome(f.key, "manual", f.manual or "no public link")
                fetch(url, dl, f.size, f.sha256, f.md5, retries=retries, timeout=timeout, label=f.key)
            try:
                placed = unpack(dl, f.archive, f.place, root, f.key)
                break
            except CorruptArchive:
                dl.unlink(missing_ok=True)
                if attempt == 2 or url is None:
                    raise
        if f.archive != "none" and not keep_archives:
            dl.unlink(missing_ok=True)
        _mark(root, f, url, placed, "fetched")
        return Outcome(f.key, "fetched", f"{sum(placed.values()) / 1e6:,.1f} MB placed")
    except (BadInput, OSError) as exc:
        if f.manual and isinstance(exc, FetchError):  # a manual file the mirror does not have either
            return Outcome(f.key, "manual", f"{f.manual} (not on the mirror: {exc})")
        detail = str(exc) if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
        return Outcome(f.key, "failed", detail.removeprefix(f"{f.key}: "))


def plan(root: Path, files: list[RemoteFile], mirror: str | None) -> list[Outcome]:
    """The dry run's view of each file: complete, partial (a ``.part`` to resume), to-fetch or manual."""
    out = []
    for f in files:
        gb = f.approx_gb or 0.0
        if is_complete(root, f):
            out.append(Outcome(f.key, "complete"))
        elif source_url(f, mirror) is None and not download_path(root, f).is_file() \
                and _given_by_hand(root, f) is None:
            out.append(Outcome(f.key, "manual", f.manual or "", gb))
        elif part_path(download_path(root, f)).is_file():
            have = part_path(download_path(root, f)).stat().st_size
            out.append(Outcome(f.key, "partial", f"{have / 1e9:,.2f} GB there, resumes", gb))
        else:
            out.append(Outcome(f.key, "to-fetch", source_url(f, mirror) or "", gb))
    return out


def _free_gb(root: Path) -> float:
    p = root
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free / 1e9


def fetch_files(recipe: str, root: str | Path, mirror: str | None = None, sources: list[str] | None = None,
                workers: int = 3, retries: int = 5, timeout: float = 60.0, keep_archives: bool = False,
                dry_run: bool = False, catalogue: Catalogue | None = None) -> PrepareReport:
    """Every catalogue file of ``recipe`` (or of ``sources``), ``workers`` at a time."""
    cat = catalogue or load_catalogue()
    root = Path(root).absolute()
    files = cat.files(recipe, sources)
    report = PrepareReport(recipe, str(root), dry_run=dry_run,
                           licences={s: cat.sources[s].licence for s in dict.fromkeys(f.source for f in files)})
    if dry_run:
        report.files = plan(root, files, mirror)
        todo = [o for o in report.files if o.status != "complete"]
        dl = sum(o.approx_gb for o in todo)
        web = sum(w.approx_images * w.approx_kb_per_image / 1e6 for s in cat.web_sources(recipe, sources)
                  if not any((root / cat.web[s].images_dir).glob("*_stats.json")) for w in [cat.web[s]])
        largest = max((o.approx_gb for o in todo), default=0.0)
        # unpacked ~ archive size (JPEGs do not compress); the largest archives exist twice while unpacking
        report.disk = {"download_gb": dl, "web_gb": web, "need_gb": dl + web + largest * workers,
                       "free_gb": _free_gb(root)}
        return report
    root.mkdir(parents=True, exist_ok=True)
    with progress.task(f"prepare {recipe}", total=len(files), unit="file") as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prepare") as pool:
        futures = [pool.submit(prepare_file, root, f, mirror, retries, timeout, keep_archives) for f in files]
        for fut in futures:
            report.files.append(fut.result())
            bar.advance(last=report.files[-1].key)
    return report
