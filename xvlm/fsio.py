"""Atomic file writes: the one implementation every stage uses (DEVELOPERS.md, "one implementation each").

A reader (a resumed run, a skip check, a concurrent query) must see either the old file or the whole new
one, never a half-written file: the bytes go to a hidden temporary file in the same folder (same file
system, so ``os.replace`` is an atomic rename), which is fsync'ed and then renamed over the target. A
writer that dies leaves only a ``.<name>.<random>.tmp`` file behind, never a truncated target.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xvlm.errors import BadInput, OutputFault

# Filesystem faults that no retry fixes and the user must: a read-only folder or file system, missing
# permission, a full disk or quota. ``output_fault`` turns them into one line naming the path.
FAULT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
# The same faults as libraries without errno word them (DuckDB's IOException, some pyarrow errors).
_FAULT_TEXTS = tuple(os.strerror(e) for e in sorted(FAULT_ERRNOS))
# OSErrors that are not worth a retry either: the path is wrong, not the moment.
_PERMANENT_ERRNOS = FAULT_ERRNOS | {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG,
                                    errno.EEXIST, errno.EINVAL, errno.EBADF, errno.EXDEV}


def output_fault(exc: BaseException, path: str | Path | None = None) -> OutputFault | None:
    """An :class:`~xvlm.errors.OutputFault` for a read-only / full / not-permitted filesystem error,
    naming ``exc.filename`` (else ``path``), or its folder when that path does not exist (a temporary
    file or a folder it failed to create); None for any other exception."""
    if isinstance(exc, OutputFault):
        return exc
    if isinstance(exc, OSError) and exc.errno in FAULT_ERRNOS:
        where, why = exc.filename or path, exc.strerror or os.strerror(exc.errno)
    elif not isinstance(exc, BadInput) and any(t in str(exc) for t in _FAULT_TEXTS):
        why = next(t for t in _FAULT_TEXTS if t in str(exc))
        where = path or (str(exc).strip().splitlines() or ["?"])[0][:300]  # DuckDB's line names the file
    else:
        return None
    if where and not os.path.lexists(where) and os.path.isdir(os.path.dirname(str(where)) or "."):
        where = os.path.dirname(str(where)) or "."  # a file or folder it could not create: name the folder refusing
    return OutputFault(f"{where or '?'}: cannot write ({why}); make the folder writable or free space and "
                       "rerun (finished work is kept, nothing partial was left)")


def require_folder(path: str | Path) -> None:
    """Raise :class:`~xvlm.errors.OutputFault` when the output folder ``path``, or the nearest of its
    parents that exists, is not a folder (a file named like the lake): the writers' ``mkdir`` would
    fail with ENOTDIR / EEXIST deep inside a stage, which no retry or rerun can fix."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.is_dir():
            return
        if q.exists() or q.is_symlink():
            raise OutputFault(f"{q}: exists and is not a folder; give the output as a folder (or a path to "
                              "create)")


def is_transient_io(exc: BaseException) -> bool:
    """Whether a retry may help: an ``OSError`` other than a bad path or a :data:`FAULT_ERRNOS` fault
    (EIO, ETIMEDOUT, ECONNRESET, ESTALE of a network file system, a refused connection...). Bad input
    (``BadInput``, including ``MissingInput``, a ``FileNotFoundError``) is never transient."""
    if isinstance(exc, BadInput) or not isinstance(exc, OSError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return exc.errno not in _PERMANENT_ERRNOS and output_fault(exc) is None


def temp_path(path: Path) -> Path:
    """A unique hidden sibling of ``path`` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content into; rename it over ``path`` on success.

    For writers that want a path rather than bytes (Parquet, tar, PNG, DuckDB). On any exception the
    temporary file is removed and ``path`` is untouched; a read-only, not-permitted or full folder is
    re-raised as :class:`~xvlm.errors.OutputFault` naming the path (:func:`output_fault`).
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if fsync and tmp.is_file():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except Exception as exc:
        fault = output_fault(exc, path)
        if fault is None or fault is exc:
            raise
        raise fault from exc
    finally:
        with contextlib.suppress(OSError):  # a read-only folder cannot hold it anyway
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: str | Path, doc: Any, indent: int | None = 2, sort_keys: bool = True,
               fsync: bool = True) -> Path:
    """``doc`` as JSON (``default=str`` for paths and the like), written atomically."""
    return write_text(path, json.dumps(doc, indent=indent, sort_keys=sort_keys, default=str), fsync=fsync)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks (checkpoints are GBs)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_tensors(path: str | Path, what: str = "checkpoint", mmap: bool = False) -> Any:
    """The one reader of torch and safetensors files: ``torch.load(weights_only=True)`` on the CPU, or
    safetensors' ``load_file`` for ``.safetensors``. ``mmap``: map a torch zip file instead of reading it
    (a cheap look at a checkpoint of GBs before a flow starts; legacy-format files are read in full).

    Why one reader: a text file, a corrupt file or a truncated download must be one line naming the file
    and what is wrong (``BadInput``, exit 2 from the CLI), wherever it is read (evaluation, inference,
    ``--resume``, the start weights); torch's own errors are a long traceback without the file name.
    """
    from xvlm.errors import BadInput, MissingInput

    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: empty file, not a {what}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        import torch

        if mmap:
            import zipfile

            if not zipfile.is_zipfile(path):  # the legacy format cannot be mapped (nor can a text file)
                mmap = False
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, SafetensorError, ...
        if isinstance(exc, BadInput):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        hint = "truncated or corrupt" if isinstance(exc, (EOFError, RuntimeError)) else "not a torch file"
        raise BadInput(f"{path}: not a readable {what} ({hint}: {type(exc).__name__}: {first})") from exc
