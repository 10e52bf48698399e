"""Malformed image and filesystem cases in their real formats, made by code (no binary test assets).

Each maker writes one fault at a path: image bytes of another format than the name says, CMYK or
grayscale JPEG, a tiny or truncated image, a dangling symlink, a symlink loop, an unreadable file, and
an unwritable folder. ``unreadable`` and ``unwritable`` work as root too (tests may run as root, whom
``chmod`` does not stop): a socket node in place of the file (``open`` fails with ENXIO, as for any
non-regular file), and the immutable attribute (``chattr +i``: EPERM even for root).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def textured(w: int, h: int, color: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (w, h), color)
    for i in range(0, w, 5):
        im.putpixel((i, (i * 3) % h), (255 - color[0], 255 - color[1], 255 - color[2]))
    return im


def rgb_jpeg(w: int, h: int, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    return encode(textured(w, h, color), "JPEG", quality=90)


def png_bytes(w: int, h: int) -> bytes:
    """An RGBA PNG (the kind a download site serves under a ``.jpg`` name)."""
    return encode(Image.new("RGBA", (w, h), (10, 200, 30, 128)), "PNG")


def cmyk_jpeg(w: int, h: int) -> bytes:
    """A CMYK JPEG of pure red (C=0, M=255, Y=255, K=0): RGB (255, 0, 0) once converted."""
    return encode(Image.new("CMYK", (w, h), (0, 255, 255, 0)), "JPEG", quality=95)


def gray_jpeg(w: int, h: int) -> bytes:
    return encode(Image.new("L", (w, h), 128), "JPEG", quality=95)


def webp_bytes(w: int, h: int) -> bytes:
    return encode(Image.new("RGB", (w, h), (10, 20, 200)), "WEBP", lossless=True)


def gif_bytes(w: int, h: int) -> bytes:
    """A palette GIF of one colour (0, 120, 240)."""
    return encode(Image.new("RGB", (w, h), (0, 120, 240)).convert("P", palette=Image.Palette.ADAPTIVE), "GIF")


def truncated_jpeg(w: int, h: int) -> bytes:
    data = rgb_jpeg(w, h)
    return data[: len(data) // 2]


def dangling_symlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(path.with_name(path.name + ".gone"))


def symlink_loop(path: Path) -> None:
    """``path`` -> ``path.loop`` -> ``path``: opening it fails with ELOOP."""
    other = path.with_name(path.name + ".loop")
    path.unlink(missing_ok=True)
    other.unlink(missing_ok=True)
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def unreadable(path: Path) -> None:
    """Make ``path`` exist but fail to open: ``chmod 000`` for a normal user; as root (whom permission
    bits do not stop) a socket node in its place (``open`` -> ENXIO)."""
    if os.geteuid() != 0:
        if not path.exists():
            path.write_bytes(rgb_jpeg(40, 40))
        path.chmod(0)
        return
    path.unlink(missing_ok=True)
    if len(str(path)) > 100:  # AF_UNIX paths are limited (108 bytes): bind from inside the folder
        cwd = os.getcwd()
        os.chdir(path.parent)
        try:
            _bind(path.name)
        finally:
            os.chdir(cwd)
    else:
        _bind(str(path))


def _bind(where: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(where)
    finally:
        s.close()


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only for this process for the ``with`` body: ``chmod 555`` for a normal user,
    ``chattr +i`` as root; skips the test (with the reason) where neither is possible."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root and the file system refuses chattr +i: cannot make a folder read-only")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden temporary files included), relative, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []
