"""Unpack a downloaded archive into the raw-root layout, member by member, and pack one (for mirrors).

``place`` maps archive members to targets (``catalogue.json``): a key ending in ``/`` is a folder
prefix (``train2017/`` -> ``coco/train2017/``), a key starting with ``**/`` matches after any leading
folders (releases differ in their top folder: ``images/v1/patch8/`` vs ``patch8/``), anything else
names one member. Members no key matches are skipped (keypoint files, READMEs). Each target is
written through :func:`xvlm.fsio.atomic_path` (no fsync per image: the completion marker written last
is what a rerun trusts), so a crash leaves whole files or none. A key that matches no member at all is
an error naming it: the release's layout changed and the catalogue must follow.

A damaged archive (zip CRC, gzip CRC, truncated stream) raises :class:`CorruptArchive`; the caller
removes it and fetches it again.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from xvlm import fsio, progress
from xvlm.errors import BadInput


class CorruptArchive(BadInput):
    """The archive cannot be read to its end (names the archive and the error)."""


def target_of(member: str, place: dict[str, str]) -> tuple[str, str] | None:
    """``(key, target path)`` for an archive member, or None when no key of ``place`` takes it."""
    member = member.removeprefix("./")
    for key, target in place.items():
        anywhere = key.startswith("**/")
        pat = key[3:] if anywhere else key
        if pat.endswith("/"):
            if member.startswith(pat):
                rest = member[len(pat):]
            elif anywhere and f"/{pat}" in member:
                rest = member.split(f"/{pat}", 1)[1]
            else:
                continue
            if rest and not rest.endswith("/"):
                return key, target + rest
        elif member == pat or (anywhere and member.endswith("/" + pat)):
            return key, target
    return None


def _inside(root: Path, rel: str) -> Path:
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()):
        raise BadInput(f"archive member would land outside the raw root: {rel}")
    return p


def _write(src: IO[bytes], dest: Path) -> int:
    with fsio.atomic_path(dest, fsync=False) as tmp, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest.stat().st_size


def _members(archive: Path, kind: str) -> Iterator[tuple[str, IO[bytes]]]:
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    with zf.open(info) as f:
                        yield info.filename, f
    elif kind in ("tar.gz", "tar"):
        with tarfile.open(archive, "r|gz" if kind == "tar.gz" else "r|") as tf:  # streamed: one pass
            for m in tf:
                if m.isfile():
                    f = tf.extractfile(m)
                    if f is not None:
                        yield m.name, f
    else:
        raise BadInput(f"{archive}: unknown archive type {kind!r}")


def unpack(archive: Path, kind: str, place: dict[str, str], root: Path, label: str = "") -> dict[str, int]:
    """Extract the members ``place`` maps under ``root``; returns ``{target: bytes}``.

    ``kind`` ``none``: ``archive`` itself is moved to its one target (the download was written beside
    it). ``gz``: decompressed to its one target.
    """
    what = label or archive.name
    placed: dict[str, int] = {}
    if kind == "none":
        dest = _inside(root, place[""])
        dest.parent.mkdir(parents=True, exist_ok=True)
        if archive.resolve() != dest:
            archive.replace(dest)
        return {place[""]: dest.stat().st_size}
    try:
        if kind == "gz":
            with gzip.open(archive, "rb") as f:
                placed[place[""]] = _write(f, _inside(root, place[""]))
            return placed
        used: set[str] = set()
        with progress.task(f"unpack {what}", total=None, unit="file") as bar:
            for name, f in _members(archive, kind):
                hit = target_of(name, place)
                if hit is None:
                    continue
                key, rel = hit
                used.add(key)
                placed[rel] = _write(f, _inside(root, rel))
                bar.advance()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptArchive(f"{what}: damaged archive ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:
        if "CRC" in str(exc) or "compressed" in str(exc).lower():
            raise CorruptArchive(f"{what}: damaged archive ({exc})") from exc
        raise
    missing = sorted(set(place) - used)
    if missing and placed_any(archive, kind):
        raise BadInput(f"{what}: no member matches {missing} (has the release's layout changed? "
                       "update xvlm/data/prepare/catalogue.json)")
    return placed


def placed_any(archive: Path, kind: str) -> bool:
    """Whether the archive holds any file (an empty one places nothing and is not a layout change)."""
    return next(iter(_members(archive, kind)), None) is not None


def pack(root: Path, kind: str, place: dict[str, str], dest: Path, only: set[Path] | None = None) -> Path:
    """The inverse of :func:`unpack`: an archive of ``kind`` holding ``root``'s files under the member
    names ``place`` gives (``**/`` dropped). Builds a mirror from a laid-out root (tests, a site cache)."""
    def members() -> Iterator[tuple[str, Path]]:
        for key, target in place.items():
            name = key[3:] if key.startswith("**/") else key
            src = root / target
            if target.endswith("/"):
                for p in sorted(src.rglob("*")):
                    if p.is_file() and (only is None or p in only):
                        yield name + p.relative_to(src).as_posix(), p
            elif src.is_file():
                yield name, src

    with fsio.atomic_path(dest) as tmp:
        if kind == "none" or kind == "gz":
            src = root / place[""]
            if kind == "none":
                shutil.copyfile(src, tmp)
            else:
                with open(src, "rb") as f, gzip.GzipFile(tmp, "wb", mtime=0) as out:
                    shutil.copyfileobj(f, out)
        elif kind == "zip":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, p in members():
                    zf.write(p, name)
        else:
            with tarfile.open(tmp, "w:gz" if kind == "tar.gz" else "w") as tf:
                for name, p in members():
                    tf.add(p, name)
    return dest


def build_mirror(root: Path, out: Path, files: list[Any]) -> list[str]:
    """A mirror (``out/<source>/<name>``) of the catalogue ``files`` built from a laid-out ``root``:
    each archive in its real format with its real member names. Entries that share one target folder
    (OpenImages' 16 train tars) split its files round-robin. Files with nothing under ``root`` are left
    out. Returns the ``source/name`` keys written."""
    groups: dict[str, list[Any]] = {}
    for f in files:
        for target in f.place.values():
            if target.endswith("/"):
                groups.setdefault(target, []).append(f)
    share: dict[tuple[str, str], set[Path]] = {}
    for target, fs in groups.items():
        if len(fs) > 1:
            found = sorted(p for p in (root / target).rglob("*") if p.is_file()) if (root / target).is_dir() else []
            for i, f in enumerate(fs):
                share[(f.key, target)] = set(found[i::len(fs)])
    written = []
    for f in files:
        srcs = [root / t for t in f.place.values()]
        if f.archive in ("none", "gz") and not any(p.exists() for p in srcs):
            continue  # (an archive is written even when empty: e.g. Objects365 patches a corpus lacks)
        only = next((share[(f.key, t)] for t in f.place.values() if (f.key, t) in share), None)
        pack(root, f.archive, f.place, out / f.source / f.name, only)
        written.append(f.key)
    return written
