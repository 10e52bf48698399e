"""Image-file checks for sources whose images sit on disk: exists, header readable, size.

Only the header is read (``PIL.Image.open(...).size`` decodes no pixels), so this costs one small read
per image; a thread pool overlaps the I/O. The result is a small Arrow table joined in SQL
(final_images.sql). An image whose file is absent -> ``missing``; a file PIL cannot identify, an empty
file, or a JPEG whose data ends before the end-of-image marker (truncated download) -> ``corrupt``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from xvlm import progress

CHECK_SCHEMA = pa.schema([("image_key", pa.string()), ("status", pa.string()),
                          ("file_width", pa.int32()), ("file_height", pa.int32())])


def check_image(path: Path) -> tuple[str, int | None, int | None]:
    """``(status, width, height)`` of one image file without decoding it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing", None, None
    if size == 0:
        return "corrupt", None, None
    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = im.format
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(max(0, size - 1024))
                tail = f.read()
            # A complete JPEG ends with EOI (FF D9), possibly followed by a little padding.
            if b"\xff\xd9" not in tail:
                return "corrupt", None, None
        return "ok", int(w), int(h)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "corrupt", None, None


def check_images(root: Path, rows: list[tuple[str, str]], workers: int = 8, label: str = "check images"
                 ) -> pa.Table:
    """Check ``(image_key, path relative to root or absolute)`` rows; returns ``CHECK_SCHEMA``.

    ``label`` names the step on the :mod:`xvlm.progress` reporter (one step per source)."""
    def one(row: tuple[str, str]) -> tuple[str, int | None, int | None]:
        p = Path(row[1])
        return check_image(p if p.is_absolute() else root / p)

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
