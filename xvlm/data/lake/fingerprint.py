"""Content fingerprints of a source's inputs: what decides whether a source is re-ingested.

A source's fingerprint hashes (a) the bytes of every annotation file it reads (sha256, streamed),
(b) a listing of its image folders (relative name, size, mtime) - hashing every image would cost more
than the ingest, and a changed listing is what changes missing/corrupt outcomes - (c) the source's
config and the lake's rule knobs, and (d) the text of every ``sql/lake`` file plus ``LAKE_VERSION``, so a
changed query re-ingests too. Same fingerprint => same lake partitions, nothing is rewritten.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xvlm.data.lake.sqlrun import SQL_ROOT

LAKE_VERSION = "1"
_CHUNK = 1 << 24
# UTF-8 verdicts of files already read by file_digest(check_utf8=True), keyed by (path, size, mtime_ns):
# None = valid, else the error detail. Lets the parse skip a second full read of a 0.7 GB JSON file.
_UTF8_VERDICTS: dict[tuple[str, int, int], str | None] = {}


def _utf8_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def utf8_verdict(path: Path) -> tuple[bool, str | None]:
    """``(known, detail)``: whether this file (same size and mtime) was validated, and its error if any."""
    key = _utf8_key(path)
    return (key in _UTF8_VERDICTS), _UTF8_VERDICTS.get(key)


def scan_utf8(path: Path, hasher: hashlib._Hash | None = None) -> str | None:
    """Read ``path`` once: validate UTF-8 (streamed incremental decode) and feed ``hasher`` if given.

    Returns None if valid, else the error detail (byte offset). ASCII blocks skip the decode. The hash
    runs in a second thread (hashlib releases the GIL), so hashing and validating cost about max(), not
    sum(), of the two.
    """
    key = _utf8_key(path)
    dec = codecs.getincrementaldecoder("utf-8")()
    offset, err = 0, None
    with open(path, "rb") as f, ThreadPoolExecutor(max_workers=1) as pool:
        while block := f.read(_CHUNK):
            fut = pool.submit(hasher.update, block) if hasher is not None else None
            # An all-ASCII block is valid UTF-8 when no multi-byte character is pending from the block
            # before: bytes.isascii() costs ~0.02 s per 0.7 GB, a decode ~0.4 s (bench/RESULTS.md).
            pending = len(dec.getstate()[0])  # bytes of a character begun in the block before
            if err is None and not (pending == 0 and block.isascii()):
                try:
                    dec.decode(block)
                except UnicodeDecodeError as exc:  # exc.start counts from the pending bytes
                    err = f"not valid UTF-8 at byte {offset - pending + exc.start}"
            offset += len(block)
            if fut is not None:
                fut.result()
            elif err is not None:
                break
    if err is None:
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            err = "not valid UTF-8 (truncated multi-byte character at the end)"
    _UTF8_VERDICTS[key] = err
    return err


def file_digest(path: Path, check_utf8: bool = False) -> str:
    """sha256 of a file's bytes; with ``check_utf8`` the same read also records its UTF-8 verdict."""
    if check_utf8:
        h = hashlib.sha256()
        scan_utf8(path, h)
        return h.hexdigest()
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _file_state(path: Path) -> str:
    """A file's digest, or why it cannot be read: a missing or unreadable file is a file-level error
    of its source (the rest still ingests), and the fingerprint records that state, so the same fault
    is not re-ingested on every run and fixing the file changes the fingerprint."""
    try:
        return file_digest(path, check_utf8=path.suffix == ".json")
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def _listing_entry(p: Path, rel: str) -> str:
    """``rel<TAB>size<TAB>mtime_ns`` of one file; a path that cannot be stat'ed (a dangling symlink, a
    symlink loop: ELOOP, a permission fault) is listed by its error and the link's own metadata, so the
    fingerprint still changes when the link changes and the image check reports it per image."""
    try:
        st = p.stat()
        return f"{rel}\t{st.st_size}\t{st.st_mtime_ns}"
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "OSError")
        try:
            lst = p.lstat()
            return f"{rel}\t{code}\t{lst.st_mtime_ns}\t{os.readlink(p) if p.is_symlink() else ''}"
        except OSError:
            return f"{rel}\t{code}"


def dir_listing_digest(path: Path) -> str:
    """sha256 over the sorted (relative path, size, mtime_ns) of every file under ``path``.

    Never raises for one bad entry (:func:`_listing_entry`): a broken image link is the image check's
    business (``missing_image_file`` / ``unreadable_image_file``), not a reason to refuse the source."""
    if not path.is_dir():
        return "absent"
    h = hashlib.sha256()
    entries = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            entries.append(_listing_entry(p, p.relative_to(path).as_posix()))
    for e in sorted(entries):
        h.update(e.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def sql_digest() -> str:
    """sha256 of every ``sql/lake/*.sql`` file (name and text)."""
    h = hashlib.sha256(LAKE_VERSION.encode())
    for p in sorted((SQL_ROOT / "lake").glob("*.sql")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(files: list[Path], dirs: list[Path], settings: dict) -> str:
    """The fingerprint of one source: its files' bytes, its image folders' listings, its settings."""
    doc = {
        "sql": sql_digest(),
        "settings": settings,
        "files": {str(p): _file_state(p) for p in files},
        "dirs": {str(p): dir_listing_digest(p) for p in dirs},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
