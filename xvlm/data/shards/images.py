"""Image bytes for the shard build: read (a file on disk or a member of an img2dataset tar), probe, resize.

The probe runs once per selected image before any sample is formed, because dedup by image bytes
needs every image's sha256 and because an unreadable image must be removed *before* shards are
assigned (otherwise a rerun that finds the file repaired would move samples between shards). It
reads the bytes, hashes them, and decodes the JPEG at draft size (DCT scaling: 1/8 of the pixels),
which catches truncated files that a header read misses.

The format is sniffed from the bytes (PIL), never taken from the file name, and recorded as
``image_format`` (``"<PIL format>/<mode>"``, e.g. ``JPEG/RGB``, ``PNG/RGBA``, ``JPEG/CMYK``). The shard's
image field is always ``jpg`` and always holds an RGB JPEG: a ``JPEG/RGB`` image is stored as its
original bytes, anything else (PNG, WebP, GIF, grayscale or CMYK JPEG) is re-encoded once by
:func:`resize_jpeg` at the recipe's ``jpeg_quality`` (docs/shards.md, "Image bytes").
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

PROBE_SCHEMA = pa.schema([
    ("image_key", pa.string()), ("status", pa.string()), ("sha256", pa.string()),
    ("file_width", pa.int32()), ("file_height", pa.int32()), ("nbytes", pa.int64()),
    ("image_format", pa.string()),
])
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
# The one format stored without re-encoding: what every webdataset/PIL consumer reads as RGB.
STORED_AS_IS = "JPEG/RGB"


class ImageReadError(Exception):
    """An image that cannot be used; ``reason`` is the quarantine reason (missing_image, unreadable_image,
    corrupt_image)."""

    def __init__(self, reason: str, where: str, detail: str = "") -> None:
        super().__init__(f"{where}: {reason}{' (' + detail + ')' if detail else ''}")
        self.reason = reason


@dataclass(frozen=True)
class ImageRef:
    """Where an image's bytes are: ``path`` relative to the raw root; ``tar_key`` = member basename."""

    image_key: str
    path: str
    tar_key: str | None = None


class ImageReader:
    """Reads image bytes; keeps each img2dataset tar open with its member index (random access)."""

    def __init__(self, raw_root: str | Path) -> None:
        self.raw_root = Path(raw_root)
        self._root = str(self.raw_root)
        self._tars: dict[Path, tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]] = {}
        self._lock = threading.Lock()

    def _resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.raw_root / p

    def _tar(self, path: Path) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]:
        got = self._tars.get(path)
        if got is None:
            if not path.is_file():
                raise ImageReadError("missing_image", str(path), "tar not found")
            tf = tarfile.open(path, "r:")  # noqa: SIM115 - kept open for random access, closed in close()
            index: dict[str, tarfile.TarInfo] = {}
            for m in tf.getmembers():
                stem, dot, ext = m.name.rpartition("/")[2].partition(".")
                if m.isfile() and dot and "." + ext.lower() in IMAGE_EXTS:
                    index.setdefault(stem, m)
            got = (tf, index)
            self._tars[path] = got
        return got

    def read(self, ref: ImageRef) -> bytes:
        """The image's bytes; raises :class:`ImageReadError`: 'missing_image' when absent (a dangling
        symlink included), 'unreadable_image' when it is there but cannot be read (permission denied,
        a symlink loop, a directory or socket at the path, an I/O error)."""
        if ref.tar_key is None:
            # os-level path and unbuffered read: the writer's per-image cost is a few syscalls + one copy
            path = os.path.join(self._root, ref.path)  # an absolute ref.path wins, as with Path's "/"
            try:
                with open(path, "rb", buffering=0) as f:
                    return f.readall()
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise ImageReadError("missing_image", path) from exc
            except OSError as exc:  # PermissionError, ELOOP, IsADirectoryError, ENXIO (socket), EIO
                raise ImageReadError("unreadable_image", path, exc.strerror or type(exc).__name__) from exc
        path = self._resolve(ref.path)
        with self._lock:  # TarFile is not thread-safe: index build and member reads are serialised
            tf, index = self._tar(path)
            m = index.get(ref.tar_key)
            if m is None:
                raise ImageReadError("missing_image", f"{path}:{ref.tar_key}", "no image member")
            f = tf.extractfile(m)
            assert f is not None
            return f.read()

    def close(self) -> None:
        for tf, _ in self._tars.values():
            tf.close()
        self._tars.clear()


def decode_check(data: bytes, where: str) -> tuple[int, int, str]:
    """``(width, height, image_format)`` after a draft-size decode (format sniffed from the bytes);
    raises ``ImageReadError('corrupt_image')``."""
    if not data:
        raise ImageReadError("corrupt_image", where, "empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            size, fmt = im.size, f"{im.format}/{im.mode}"
            im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
        return int(size[0]), int(size[1]), fmt
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError("corrupt_image", where, str(exc).split("\n", 1)[0]) from exc


_STATUS = {"missing_image": "missing", "unreadable_image": "unreadable", "corrupt_image": "corrupt"}


def probe_one(reader: ImageReader, ref: ImageRef, width: int | None, height: int | None, min_side: int = 1
              ) -> tuple[str, str | None, int | None, int | None, int | None, str | None]:
    """``(status, sha256, width, height, nbytes, image_format)``; status ok | missing | unreadable |
    corrupt | too_small (shorter side < ``min_side``) | size_mismatch (first match wins)."""
    try:
        data = reader.read(ref)
        w, h, fmt = decode_check(data, ref.path)
    except ImageReadError as exc:
        return _STATUS[exc.reason], None, None, None, None, None
    if min(w, h) < min_side:
        status = "too_small"
    else:
        status = "ok" if width in (None, w) and height in (None, h) else "size_mismatch"
    return status, hashlib.sha256(data).hexdigest(), w, h, len(data), fmt


def probe_images(raw_root: str | Path, rows: Iterable[tuple[str, str, str | None, int | None, int | None]],
                 workers: int = 4, min_side: int = 1) -> pa.Table:
    """Probe ``(image_key, path, tar_key, width, height)`` rows; returns a ``PROBE_SCHEMA`` table."""
    rows = list(rows)
    reader = ImageReader(raw_root)
    try:
        # Tar members are read in archive order by one thread per tar; files in parallel.
        def one(r: tuple[str, str, str | None, int | None, int | None]) -> tuple:
            return probe_one(reader, ImageRef(r[0], r[1], r[2]), r[3], r[4], min_side)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            res = list(pool.map(one, rows))
    finally:
        reader.close()
    return pa.table({
        "image_key": [r[0] for r in rows],
        "status": [x[0] for x in res], "sha256": [x[1] for x in res],
        "file_width": [x[2] for x in res], "file_height": [x[3] for x in res], "nbytes": [x[4] for x in res],
        "image_format": [x[5] for x in res],
    }, schema=PROBE_SCHEMA)


def resize_jpeg(data: bytes, max_side: int | None, quality: int) -> tuple[bytes, int, int]:
    """Re-encode as an RGB JPEG with the longer side at most ``max_side`` (None: keep the size; never
    upscaled); returns (bytes, w, h). Any input format PIL reads (PNG, WebP, GIF: its first frame;
    grayscale and CMYK JPEG) comes out RGB; an alpha channel is dropped (the colour under it is kept).

    Bicubic resize after a draft decode to the nearest DCT scale >= the target (what Pillow's
    ``thumbnail`` does); RGB, baseline JPEG, no EXIF, so the output depends on the pixels only.
    """
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        scale = 1.0 if max_side is None else min(1.0, max_side / max(w, h))
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        im.draft("RGB", (tw, th))
        rgb = im.convert("RGB")
        if rgb.size != (tw, th):
            rgb = rgb.resize((tw, th), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=quality)
        return buf.getvalue(), tw, th
