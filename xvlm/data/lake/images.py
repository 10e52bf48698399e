"""Image-file checks for sources whose images sit on disk: exists, readable, header readable, size.

Only the header is read (``PIL.Image.open(...).size`` decodes no pixels), so this costs one small read
per image; a thread pool overlaps the I/O. The result is a small Arrow table joined in SQL
(final_images.sql). The format is what PIL sniffs from the bytes (a PNG named ``.jpg`` is a PNG), never
the file name. Statuses, one per image, so one bad file never fails its source:

- ``missing``     no file at the path, or a dangling symlink (its target is gone)
- ``unreadable``  the path exists but cannot be opened: permission denied, a symlink loop (ELOOP), a
  directory, a socket or other non-regular file
- ``corrupt``     an empty file, bytes PIL cannot identify, or a JPEG whose data ends before the
  end-of-image marker (truncated download)
- ``too_small``   readable, but the shorter side is below ``min_side`` pixels (a 1x1 tracking pixel)
- ``ok``          everything else (``file_width``/``file_height`` from the header)
"""

from __future__ import annotations

import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from xvlm import progress

CHECK_SCHEMA = pa.schema([("image_key", pa.string()), ("status", pa.string()),
                          ("file_width", pa.int32()), ("file_height", pa.int32())])
# The default smallest accepted side (pixels): below it an image carries no usable content at any of the
# training resolutions (a 1x1 or 16x16 placeholder, a tracking pixel). IngestConfig and Recipe use it.
DEFAULT_MIN_SIDE = 32


def check_image(path: Path, min_side: int = 1) -> tuple[str, int | None, int | None]:
    """``(status, width, height)`` of one image file without decoding it (statuses: module docstring)."""
    try:
        st = os.stat(path)  # follows symlinks: a dangling one is FileNotFoundError, a loop ELOOP
    except FileNotFoundError:
        return "missing", None, None
    except OSError:  # ELOOP, EACCES on a parent folder, ENAMETOOLONG, ...
        return "unreadable", None, None
    if not stat.S_ISREG(st.st_mode):
        return "unreadable", None, None
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; opening is what tells unreadable from corrupt
    except OSError:
        return "unreadable", None, None
    with f:
        if st.st_size == 0:
            return "corrupt", None, None
        try:
            with Image.open(f) as im:
                w, h = im.size
                fmt = im.format
            if fmt == "JPEG":
                f.seek(max(0, st.st_size - 1024))
                # A complete JPEG ends with EOI (FF D9), possibly followed by a little padding.
                if b"\xff\xd9" not in f.read():
                    return "corrupt", None, None
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EACCES, errno.EPERM):  # the read failed, not the format
                return "unreadable", None, None
            return "corrupt", None, None
        except (UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
            return "corrupt", None, None
    if min(w, h) < min_side:
        return "too_small", int(w), int(h)
    return "ok", int(w), int(h)


def check_images(root: Path, rows: list[tuple[str, str]], workers: int = 8, label: str = "check images",
                 min_side: int = 1) -> pa.Table:
    """Check ``(image_key, path relative to root or absolute)`` rows; returns ``CHECK_SCHEMA``.

    ``label`` names the step on the :mod:`xvlm.progress` reporter (one step per source); ``min_side``:
    a shorter side below it is ``too_small`` (quarantined ``image_too_small``)."""
    def one(row: tuple[str, str]) -> tuple[str, int | None, int | None]:
        p = Path(row[1])
        return check_image(p if p.is_absolute() else root / p, min_side)

    with ThreadPoolExecutor(max_workers=workers) as pool, \
            progress.task(label, total=len(rows), unit="image") as bar:
        results = []
        for r in pool.map(one, rows):
            results.append(r)
            bar.advance()
    return pa.table({
        "image_key": [r[0] for r in rows],
        "status": [s for s, _, _ in results],
        "file_width": [w for _, w, _ in results],
        "file_height": [h for _, _, h in results],
    }, schema=CHECK_SCHEMA)
