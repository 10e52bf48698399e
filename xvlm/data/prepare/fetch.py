"""Resumable downloads of one file: HTTP range requests (urllib) or a copy from a local mirror folder.

Why not :func:`xvlm.fsio.atomic_path`: its temporary file has a random name and is removed on failure,
so an interrupted 18 GB download would start again from zero. Here the bytes go to ``<dest>.part``
(kept between runs); a rerun asks the server for the rest (``Range: bytes=N-``) and appends if it
answers ``206``, or starts over on ``200`` (a server without ranges). Only when the byte count matches
(the catalogue's size, else the size the server announced) and the checksum the publisher gives (if
any) matches is ``.part`` renamed over ``dest`` (``os.replace``: atomic, same folder). A connection
dropped half-way is retried with a resume (``retries`` times, backing off); an HTTP 4xx is final.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from xvlm import progress
from xvlm.errors import BadInput

CHUNK = 1 << 20
USER_AGENT = "xvlm-prepare/1 (+https://github.com/zengyan-97/X-VLM data layout)"


class FetchError(BadInput):
    """A file could not be fetched or failed its check (names the file and the cause, one line)."""


class _Retry(Exception):
    """A transient failure (network, 5xx, short read): resume and try again."""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def hexdigest(path: Path, algo: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algo).hexdigest()


def verify(path: Path, size: int | None, sha256: str | None, md5: str | None, what: str) -> None:
    """Raise :class:`FetchError` unless ``path`` has the given size and checksums (None: not checked)."""
    n = path.stat().st_size
    if size is not None and n != size:
        raise FetchError(f"{what}: {n} bytes, expected {size} (truncated or changed upstream)")
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want and hexdigest(path, algo) != want.lower():
            raise FetchError(f"{what}: {algo} mismatch (corrupt download)")


def _total_from(resp: object, have: int) -> int | None:
    headers = resp.headers  # type: ignore[attr-defined]
    cr = headers.get("Content-Range")
    if cr and (m := re.match(r"bytes \d+-\d+/(\d+)", cr)):
        return int(m.group(1))
    cl = headers.get("Content-Length")
    return int(cl) + have if cl is not None else None


def _http_once(url: str, part: Path, timeout: float, what: str) -> int | None:
    """One request: append to ``part`` from its current size. Returns the full size when known.

    The progress step (MB, rate, ETA) opens once the response says how big the file is."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URLs from the catalogue
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at or past the end: our part is stale, start over
            part.unlink()
            raise _Retry("range not satisfiable; restarting") from exc
        if exc.code >= 500 or exc.code == 429:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise _Retry(str(getattr(exc, "reason", exc))) from exc
    with resp:
        if have and resp.status != 206:  # no range support: the body is the whole file
            have = 0
        total = _total_from(resp, have)
        got = have
        with progress.task(f"fetch {what}", total=total / 1e6 if total else None, unit="MB",
                           completed=have / 1e6) as bar:
            try:
                with open(part, "ab" if have else "wb") as out:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                        bar.advance(len(chunk) / 1e6)
            except (OSError, HTTPException) as exc:  # connection dropped half-way (IncompleteRead, reset)
                raise _Retry(f"connection lost after {got} bytes ({type(exc).__name__})") from exc
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got} of {total} bytes")
    return total


def _copy_once(src: Path, part: Path, what: str) -> int:
    """Copy from a mirror folder, resuming like a range request."""
    if not src.is_file():
        raise FetchError(f"not on the mirror: {src}")
    have = part.stat().st_size if part.exists() else 0
    total = src.stat().st_size
    if have > total:
        have = 0
    with open(src, "rb") as f, open(part, "ab" if have else "wb") as out, \
            progress.task(f"copy {what}", total=total / 1e6, unit="MB", completed=have / 1e6) as bar:
        f.seek(have)
        while chunk := f.read(CHUNK):
            out.write(chunk)
            bar.advance(len(chunk) / 1e6)
    return total


def fetch(url: str, dest: Path, size: int | None = None, sha256: str | None = None, md5: str | None = None,
          retries: int = 5, timeout: float = 60.0, backoff_s: float = 0.5, label: str | None = None) -> Path:
    """Fetch ``url`` (``http(s)://``, ``file://`` or a local path) to ``dest``, resuming a ``.part``.

    Returns ``dest``. Raises :class:`FetchError` (one line, ``label`` in front) on a final failure:
    HTTP 4xx, not on the mirror, still short after ``retries`` resumes, wrong size or checksum (the
    bad ``.part`` is removed then, so the next run starts clean).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    what = label or dest.name
    local = None if re.match(r"^https?://", url) else Path(url.removeprefix("file://"))
    total: int | None = None
    for attempt in range(retries + 1):
        try:
            total = _copy_once(local, part, what) if local else _http_once(url, part, timeout, what)
            break
        except _Retry as exc:
            if attempt == retries:
                raise FetchError(f"{what}: {exc} (gave up after {retries} retries; rerun to resume)") from exc
            time.sleep(backoff_s * 2 ** attempt)
        except FetchError as exc:
            raise FetchError(f"{what}: {exc} ({url})") from exc
    try:
        verify(part, size if size is not None else total, sha256, md5, what)
    except FetchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest
