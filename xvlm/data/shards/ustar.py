"""Shard tar output: the bytes webdataset's ``TarWriter`` writes, without its per-member stream overhead.

Why the shard writer does not use webdataset's ``TarWriter`` (the project standard's tool for tar I/O):
measured on 2,000 JPEGs / 165 MB (``bench/shards_bench.py``, ``bench/RESULTS.md``). ``TarWriter``
opens ``tarfile`` in stream mode (``w|``), which copies every member through a ``BytesIO`` in 10 KiB
pieces (~16,500 Python-level writes and hash updates per 2,000 samples) and builds each 512-byte
header with ``TarInfo.tobuf`` (~25 us each). Writing the same tar from memory took 0.36-0.78 s that
way vs 0.18-0.27 s here (median 2.2x over 5 interleaved rounds); the whole pass-through writer went
from 0.84-1.06 s to 0.55-0.64 s (1.56x median, same bytes). Reading shards stays with webdataset /
``tarfile``, except the audit's listing of every member header (:func:`read_members`, measured there).

Same bytes, by construction and by test (``tests/shards/test_ustar.py`` compares with ``TarWriter``):
each member is a ustar header for ``TarInfo(name)`` with size, ``mtime=0``, ``mode=0o444``, uid/gid 0,
empty user/group names (what ``TarWriter(user="", group="", mode=0o444, mtime=0)`` with ustar format
gives), the data, NUL padding to 512; the archive ends with two zero blocks and NUL padding to a
10,240-byte record (``TarFile.close``). Headers are the ``tobuf`` output of a template member with the
name, size and checksum fields filled in (those are the only fields that differ between our members);
names longer than 100 bytes (ustar splits them into prefix + name) go through ``tobuf`` itself.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Sequence

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: TarFile.close pads the archive to a multiple of this
ENCODING, ERRORS = tarfile.ENCODING, "surrogateescape"  # tarfile.open's defaults, as TarWriter uses them
MODE = 0o444
_NUL = bytes(2 * BLOCK + RECORD)  # the longest run of NULs we write (archive end)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, 0, MODE, "", ""
    return ti


def tobuf_header(name: str, size: int) -> bytes:
    """The reference: ``tarfile``'s own ustar header for our fixed metadata (slow path, and tests)."""
    return _tarinfo(name, size).tobuf(tarfile.USTAR_FORMAT, ENCODING, ERRORS)


# Template: a header with an empty name and size 0. Field layout (POSIX ustar): name [0:100], mode,
# uid, gid [100:124], size [124:136], mtime [136:148], checksum [148:156], the rest [156:512].
_TMPL = tobuf_header("", 0)
_MID, _TAIL = _TMPL[100:124], _TMPL[136:148]
_REST = _TMPL[156:]
# The checksum is the byte sum of the header with its 8-byte field read as spaces (8 * 0x20 = 256),
# written as "%06o\0" followed by the field's last space (tarfile._create_header).
_CHK_BASE = 256 + sum(_MID) + sum(_TAIL) + sum(_REST)


def member_header(name: str, size: int) -> bytes:
    """512-byte ustar header, byte-identical to :func:`tobuf_header` (fast path: name <= 100 bytes)."""
    nb = name.encode(ENCODING, ERRORS)
    if len(nb) > 100 or not 0 <= size < 8**11:
        return tobuf_header(name, size)  # prefix split, or tarfile's own overflow error
    sz = b"%011o\0" % size
    chk = _CHK_BASE + sum(nb) + sum(sz)
    return b"".join((nb, _NUL[: 100 - len(nb)], _MID, sz, _TAIL, b"%06o\0 " % chk, _REST))


class UstarWriter:
    """Appends members to an open, empty, unbuffered file descriptor and computes the :func:`tar_digest`.

    ``offset`` is the archive size so far; :meth:`add_sample` returns each member's data offset.
    """

    def __init__(self, fd: int) -> None:
        self._fd, self.offset, self._h = fd, 0, hashlib.sha256()

    def add_sample(self, key: str, members: Sequence[tuple[str, bytes]],
                   digests: Sequence[bytes | None] = ()) -> list[int]:
        """Write ``key.ext`` members in the given order (TarWriter sorts by extension) with one syscall.

        ``digests[i]``, when given, is ``sha256(members[i] data).digest()`` as the caller already
        computed it (the shard writer hashes each image to check it against the probe): then the
        image bytes are hashed once in all, not once more for the archive digest. Not checked here.
        """
        parts: list[bytes] = []
        offs: list[int] = []
        off = self.offset
        h = self._h
        for i, (ext, data) in enumerate(members):
            header = member_header(f"{key}.{ext}", len(data))
            digest = digests[i] if i < len(digests) else None
            if digest is None:
                digest = hashlib.sha256(data).digest()
            offs.append(off + BLOCK)
            pad = -len(data) % BLOCK
            parts += (header, data, _NUL[:pad]) if pad else (header, data)
            h.update(header)
            h.update(digest)
            if pad:
                h.update(_NUL[:pad])
            off += BLOCK + len(data) + pad
        self._write_all(parts)
        self.offset = off
        return offs

    def _write_all(self, parts: list[bytes]) -> None:
        n = sum(len(p) for p in parts)
        done = os.writev(self._fd, parts)
        if done < n:  # partial write (rare on regular files): send the rest
            view = memoryview(b"".join(parts))[done:]
            while view:
                view = view[os.write(self._fd, view):]

    def close(self) -> str:
        """Two zero blocks, NUL padding to a full record; returns the archive's :func:`tar_digest` (hex)."""
        end = 2 * BLOCK + (-(self.offset + 2 * BLOCK) % RECORD)
        self._write_all([_NUL[:end]])
        self._h.update(_NUL[:end])
        self.offset += end
        return self._h.hexdigest()


def tar_digest(path: str | os.PathLike[str]) -> str:
    """The shard's integrity digest, recomputed from the file (what ``UstarWriter.close`` returned).

    Definition: sha256 of the archive in which every member's data is replaced by its 32-byte sha256
    (headers, padding and the end-of-archive bytes as they are). Every byte of the file is covered
    (a changed data byte changes its member's sha256; the rest is hashed as is; sizes come from the
    hashed headers), and the writer, which must sha256 each image anyway, gets it without a second
    pass over the image bytes (that pass was ~20% of the pass-through writer's profiled time:
    ``bench/RESULTS.md``). Raises ``ValueError`` on a truncated archive or a base-256 size field.
    """
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            header = f.read(BLOCK)
            if len(header) < BLOCK:
                raise ValueError(f"{path}: truncated tar (no end-of-archive blocks)")
            h.update(header)
            if header == _NUL[:BLOCK]:  # first end block: the rest of the file as is
                h.update(f.read())
                return h.hexdigest()
            if header[124] & 0x80:
                raise ValueError(f"{path}: base-256 size field (not written by UstarWriter)")
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            data = f.read(size)
            pad = f.read(-size % BLOCK)
            if len(data) < size or len(pad) < -size % BLOCK:
                raise ValueError(f"{path}: truncated tar member at offset {f.tell() - len(data) - len(pad)}")
            h.update(hashlib.sha256(data).digest())
            h.update(pad)


def read_members(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every member, from the headers alone: what
    ``[(m.name, m.offset_data, m.size) for m in tarfile.open(path).getmembers()]`` gives for the
    archives :class:`UstarWriter` writes, ~4x faster (3.9 vs 15.4 us a member of the 16m synthesized shards).

    Why not ``tarfile``: finalize's manifest audit reads every header of every shard (~33M members at
    recipe 16m) and ``getmembers`` spends 15-18 us on each (a ``TarInfo`` per member, its full field
    decode), ~90% of finalize's CPU (bench/RESULTS.md, "Manifest (finalize) at 16M"). Here one seek and
    one 512-byte read per member, the checksum verified, name (with the ustar prefix) and size decoded.
    Anything this reader does not decode (a pax or GNU long-name member, a link, a base-256 size) goes
    to ``tarfile`` for the whole archive. Stricter than ``tarfile`` where an audit should be: a bad
    header checksum or a file that ends before the end-of-archive blocks raises ``tarfile.ReadError``
    naming the byte (``tarfile`` raises only at byte 0 and elsewhere silently stops listing).
    """
    out: list[tuple[str, int, int]] = []
    with open(path, "rb", buffering=0) as f:
        off = 0
        while True:
            f.seek(off)
            h = f.read(BLOCK)
            if len(h) < BLOCK:
                raise tarfile.ReadError(f"{path}: truncated tar (ends at byte {off + len(h)} before its "
                                        "end-of-archive blocks)")
            if h == _NUL[:BLOCK]:
                return out
            if h[156:157] not in (b"0", b"\0") or h[124] & 0x80 or h[257:263] != b"ustar\0":
                return _tarfile_members(path)
            try:
                chk = int(h[148:156].strip(b"\0 ") or b"0", 8)
                size = int(h[124:136].strip(b"\0 ") or b"0", 8)
            except ValueError as exc:
                raise tarfile.ReadError(f"{path}: bad tar header at byte {off}") from exc
            if chk != sum(h) - sum(h[148:156]) + 256:
                raise tarfile.ReadError(f"{path}: bad tar header checksum at byte {off}")
            name = h[:100].split(b"\0", 1)[0]
            prefix = h[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
            out.append((name.decode(ENCODING, ERRORS), off + BLOCK, size))
            off += BLOCK + size + (-size % BLOCK)


def _tarfile_members(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    with tarfile.open(path, "r:") as tf:
        return [(m.name, m.offset_data, m.size) for m in tf.getmembers()]
