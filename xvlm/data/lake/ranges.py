"""Cut one top-level JSON array into N byte ranges at element boundaries, so N parsers can share it.

Why: DuckDB parses ONE JSON array on one thread; VG's ``region_descriptions.json`` (0.7 GB, one array of
108K image objects) is the single-threaded floor of the fused regions pass. Cut into N arrays, the parses
can run on N threads (``xvlm/data/lake/fused.py``).

How: from each nominal cut offset, scan forward in bounded reads (1 MiB, never the whole file) for the
separator VG's writer emits between top-level objects, ``}, {"regions":`` (whitespace-tolerant, see
``SEP``). Range k is written to its own file as ``[`` + its bytes + ``,`` + a range-end object + ``]``;
the range-end object (one region with a token id, ``range_end``) is quarantined by the box rule like any
bad image id, and its locator ``[m].regions[0]`` tells the element count m of the range, which offsets the
locators of the following ranges so they equal the sequential ones.

Soundness. A cut is right when its ``}`` closes a top-level element (depth 1, outside strings). In
valid JSON a SEP match never lies inside a string: a string's own quotes are escaped (``\\"``), so the
unescaped ``"`` before ``regions`` would have to close the string, and ``regions`` cannot follow a
closing quote; with only whitespace and ``,`` between ``}`` and ``{``, neither is in a string. It can
lie deeper than the top level (e.g. a region object with a ``regions`` key). Any wrong cut - and, for a
malformed file, a cut inside a string - makes the range file ending there invalid JSON, so "every range
file parses as an array" implies "every cut is a top-level separator":

- Range 0 starts right after the file's ``[``, i.e. at a true element start (depth 1, outside strings).
  Suppose range k starts at a true element start and its cut is wrong.
- Cut inside a string literal: the string is still open where the range ends; the appended ``,{"`` ends
  it at the first quote and the next character is ``i`` (of ``"id"``), which JSON never allows after a
  string (only ``:``, ``,``, ``}``, ``]`` or whitespace): invalid.
- Cut outside strings at depth d > 1 (e.g. between two regions of one image): after the appended
  object and ``]`` the text ends with d - 1 >= 1 containers still open: invalid. (d < 1 would mean the
  ``}`` closes the wrapping ``[``: invalid too.)
- So if range k parses, its cut is a true top-level separator, and range k+1 starts at a true element
  start: by induction every range is a run of whole elements, in file order, and with the separators
  between them they make up the whole array, so the file parses and gives the same elements. DuckDB's
  reader is strict (yyjson; ``tests/data/test_lake_ranges.py`` pins the cases above on DuckDB itself).

On any parse error in a range the caller drops the split and parses the file as one range, which raises
the usual error naming the file when the file itself is bad.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# `}` `,` `{"regions":` with up to 16 whitespace bytes around each token; group 1 starts the next element.
SEP = re.compile(rb'\}[ \t\r\n]{0,16},[ \t\r\n]{0,16}(\{[ \t\r\n]{0,16}"regions"[ \t\r\n]{0,16}:)')
_READ = 1 << 20
_OVERLAP = 128  # > the longest SEP match, so a separator across two reads is still found
_WS = b" \t\r\n"


def array_interior(path: Path) -> tuple[int, int] | None:
    """Offsets just after the opening ``[`` and of the closing ``]``; None when the file does not look
    like one array (then it is not split; the single parse reports what is wrong)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw_head = f.read(min(size, 4096))
        f.seek(max(0, size - 4096))
        tail = f.read().rstrip(_WS)
    head = raw_head.lstrip(_WS)
    if not head.startswith(b"[") or not tail.endswith(b"]"):
        return None
    start = len(raw_head) - len(head) + 1
    end = max(0, size - 4096) + len(tail) - 1
    return (start, end) if start <= end else None


def element_ranges(path: Path, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` byte ranges ``[start, end)`` covering the array's elements, cut at candidate separators
    (each range starts with ``{`` and ends with ``}``, the ``,`` between them dropped). Fewer ranges when
    no separator follows a nominal cut; ``[]`` when the file is not split at all."""
    inner = array_interior(path)
    if inner is None or n < 2:
        return []
    s, e = inner
    cuts: list[tuple[int, int]] = []  # (end of range k, start of range k+1)
    with path.open("rb") as f:
        pos = s
        for k in range(1, n):
            off = max(s + (e - s) * k // n, pos)
            found = None
            while off < e and found is None:
                f.seek(off)
                buf = f.read(min(_READ, e - off))
                m = SEP.search(buf)
                if m is not None:
                    found = (off + m.start() + 1, off + m.start(1))
                elif len(buf) <= _OVERLAP:
                    break
                else:
                    off += len(buf) - _OVERLAP
            if found is None:
                break
            cuts.append(found)
            pos = found[1]
    if not cuts:
        return []
    starts = [s] + [c[1] for c in cuts]
    ends = [c[0] for c in cuts] + [e]
    return list(zip(starts, ends, strict=True))


def range_end(token: str) -> bytes:
    """The object appended to each range file: one region whose id is ``token`` under a non-numeric image
    id (so the box rule quarantines it as ``invalid_number``); its locator gives the range's element count."""
    return json.dumps({"id": token, "regions": [{"region_id": token}]}).encode()


def write_range(path: Path, start: int, end: int, dest: Path, token: str) -> None:
    """``dest`` = ``[`` + bytes ``[start, end)`` of ``path`` + ``,`` + :func:`range_end` + ``]``."""
    copy_span(path, start, end, dest, b"[", b"," + range_end(token) + b"]")


def copy_span(path: Path, start: int, end: int, dest: Path, head: bytes, tail: bytes) -> None:
    """``dest`` = ``head`` + bytes ``[start, end)`` of ``path`` + ``tail``.

    The body is copied in the kernel (``os.copy_file_range``: no user-space buffer; ~2x faster than
    read + write for VG's 360 MB halves), else in bounded reads."""
    with path.open("rb") as f, dest.open("wb") as g:
        g.write(head)
        g.flush()
        left, pos = end - start, start
        copy_range = getattr(os, "copy_file_range", None)
        try:
            while left > 0 and copy_range is not None:
                n = copy_range(f.fileno(), g.fileno(), left, pos)
                if n == 0:  # some file systems stop early (coreutils falls back too); reads tell a short file
                    break
                left, pos = left - n, pos + n
        except OSError:
            g.seek(0, os.SEEK_END)  # not supported here (file system, kernel): copy the rest by reads
        f.seek(pos)
        while left > 0:
            buf = f.read(min(_READ, left))
            if not buf:
                raise OSError(f"{path}: shorter than expected while copying a range")
            g.write(buf)
            left -= len(buf)
        g.write(tail)


def remove(paths: list[Path]) -> None:
    """Delete the range files that exist."""
    for p in paths:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------- one top-level object (COCO format)
#
# Why: a COCO-format file (COCO instances, Objects365) is ONE object whose `images` / `annotations`
# arrays hold everything; DuckDB parses an object whole (maximum_object_size <= 4 GiB, several times its
# size in memory), so Objects365's 5 GB file is refused and COCO's 0.45 GB instances file runs out of
# memory at the default 2 GB limit. Here the file is scanned once for its structure and each big array
# is cut at element boundaries into parts, each written as a small object of the same shape
# (``{"images": [...]}``, ``{"categories": ..., "annotations": [...]}``) and parsed by the same SQL.
#
# How: unlike a top-level array of VG images, the elements here have no key we can trust to start them,
# so the cut points come from an exact structural scan: quotes (minus escaped ones: an odd run of
# backslashes before them), string parity by a running count, and container depth by a running sum of
# `{[` minus `}]` outside strings - vectorised with numpy over the few "interesting" bytes of each block
# (~10-20% of a JSON file). A `,` outside strings at depth 2 separates two elements of a top-level
# member's value; a `,` at depth 1 separates two members. For valid JSON this finds exactly the element
# boundaries; for invalid JSON either the scan fails (depth below 0, open string or containers at the
# end) or some part fails to parse, and both raise naming the file: there is no partial result.

_SCAN_BLOCK = 4 << 20
# byte class: 1 quote, 2 backslash, 3 open, 4 close, 5 comma, 6 colon
_CLS = np.zeros(256, dtype=np.uint8)
_CLS[ord('"')], _CLS[ord("\\")], _CLS[ord(",")], _CLS[ord(":")] = 1, 2, 5, 6
_CLS[ord("{")] = _CLS[ord("[")] = 3
_CLS[ord("}")] = _CLS[ord("]")] = 4
_KEY = re.compile(rb'[ \t\r\n]*"((?:[^"\\]|\\.)*)"[ \t\r\n]*:[ \t\r\n]*')


@dataclass(frozen=True)
class Member:
    """A top-level member ``"key": value``: ``value`` = byte span of the value; for an array,
    ``elements`` = spans of its runs of whole elements (each about ``part_bytes`` long), else ``[]``."""

    key: str
    value: tuple[int, int]
    is_array: bool
    elements: list[tuple[int, int]]


class JsonShapeError(ValueError):
    """The file is not one well-formed JSON object (the message says where)."""


def _backslashes_before(buf: bytes, i: int, carry: int) -> int:
    n = 0
    while i - 1 - n >= 0 and buf[i - 1 - n] == 0x5C:
        n += 1
    return n + carry if i - n == 0 else n


def object_members(path: Path, part_bytes: int, block: int = _SCAN_BLOCK) -> dict[str, Member]:
    """Scan ``path`` (one top-level JSON object) and return its members, arrays cut into element runs of
    about ``part_bytes``. Raises :class:`JsonShapeError` if the file is not one well-formed object at the
    structural level (strings closed, brackets balanced, nothing after the object)."""
    size = path.stat().st_size
    depth, in_str, bs_carry = 0, 0, 0
    seps: list[int] = []  # the `{` that opens the object, every depth-1 `,`, the `}` that closes it
    cuts: list[int] = []  # depth-2 `,`: about one per part_bytes
    next_cut = 0
    with path.open("rb") as f:
        for off in range(0, size, block):
            buf = f.read(block)
            b = np.frombuffer(buf, dtype=np.uint8)
            cls = _CLS[b]
            idx = np.flatnonzero(cls)
            c = cls[idx]
            q = c == 1
            prev = b[np.maximum(idx - 1, 0)]
            if len(idx) and idx[0] == 0:
                prev[0] = 0x5C if bs_carry else 0
            for j in np.flatnonzero(q & (prev == 0x5C)).tolist():  # rare: an odd backslash run escapes it
                if _backslashes_before(buf, int(idx[j]), bs_carry) % 2:
                    q[j] = False
            par = (np.cumsum(q, dtype=np.int64) + in_str) & 1  # 1 = inside a string after this byte
            outside = par == 0
            delta = np.where(outside & (c == 3), 1, 0) - np.where(outside & (c == 4), 1, 0)
            d_after = np.cumsum(delta, dtype=np.int64) + depth
            d_before = d_after - delta
            if len(idx):
                if d_after.min() < 0:
                    raise JsonShapeError(f"unbalanced brackets near byte {off + int(idx[np.argmax(d_after < 0)])}")
                top = np.flatnonzero(((c == 3) & outside & (d_before == 0)) | ((c == 4) & outside & (d_after == 0)) |
                                     ((c == 5) & outside & (d_before == 1)))
                seps.extend((off + idx[top]).tolist())
                d2 = off + idx[np.flatnonzero((c == 5) & outside & (d_before == 2))]
                while len(d2):
                    k = int(np.searchsorted(d2, next_cut))
                    if k >= len(d2):
                        break
                    cuts.append(int(d2[k]))
                    next_cut = int(d2[k]) + part_bytes
                    d2 = d2[k + 1:]
                depth, in_str = int(d_after[-1]), int(par[-1])
            tail = len(buf) - len(buf.rstrip(b"\\"))
            bs_carry = bs_carry + tail if tail == len(buf) else tail
    if in_str or depth:
        raise JsonShapeError(f"truncated or unbalanced: ends inside {'a string' if in_str else f'{depth} open containers'}")
    return _members(path, seps, cuts, size)


def _members(path: Path, seps: list[int], cuts: list[int], size: int) -> dict[str, Member]:
    with path.open("rb") as f:
        head = f.read(min(size, 64)).lstrip(_WS)
        if not head.startswith(b"{") or len(seps) < 2:
            raise JsonShapeError("not one JSON object")
        f.seek(seps[-1] + 1)
        if f.read().strip(_WS):
            raise JsonShapeError(f"bytes after the object's closing brace at byte {seps[-1]}")
        f.seek(seps[-1])
        if f.read(1) != b"}":
            raise JsonShapeError(f"the object is closed by a ']' at byte {seps[-1]}")
        out: dict[str, Member] = {}
        if len(seps) == 2:  # {} : no members
            f.seek(seps[0] + 1)
            if f.read(seps[1] - seps[0] - 1).strip(_WS):
                raise JsonShapeError("not one JSON object")
            return out
        for a, z in zip(seps[:-1], seps[1:], strict=True):
            f.seek(a + 1)
            head = f.read(min(z - a - 1, 4096))
            m = _KEY.match(head)
            if m is None:
                raise JsonShapeError(f"no member key after byte {a}")
            key = json.loads(b'"' + m.group(1) + b'"')
            if key in out:
                raise JsonShapeError(f"member {key!r} appears twice")
            v0 = a + 1 + m.end()
            f.seek(max(v0, z - 64))
            v1 = max(v0, z - 64) + len(f.read(z - max(v0, z - 64)).rstrip(_WS))
            is_array = head[m.end():m.end() + 1] == b"["
            elements: list[tuple[int, int]] = []
            if is_array:
                s0, s1 = v0 + 1, v1 - 1  # inside [ ]
                f.seek(s0)
                if s1 - s0 > 64 or f.read(s1 - s0).strip(_WS):
                    inner = [c for c in cuts if s0 < c < s1]
                    starts = [s0] + [c + 1 for c in inner]
                    ends = inner + [s1]
                    elements = list(zip(starts, ends, strict=True))
            out[key] = Member(key, (v0, v1), is_array, elements)
    return out


# The members a COCO-format parse reads (cocofmt_doc.sql); `categories` goes into every annotations part.
_PARTED = ("images", "annotations")
_MAX_SMALL_MEMBER = 256 << 20


def cocofmt_parts(path: Path, members: dict[str, Member], dest_dir: Path
                  ) -> Iterator[tuple[str, Path, tuple[int, int]]]:
    """Write the parts of a COCO-format file one at a time and yield ``(member, part file, byte span)``:
    ``{"images": [run]}`` for each run of images, ``{"categories": <the file's>, "annotations": [run]}``
    for each run of annotations (one with no annotations when the file has none, so that its categories are
    still counted). The caller parses and deletes each part before asking for the next."""
    cats = members.get("categories")
    head_ann = b'{"annotations": ['
    if cats is not None:
        a, z = cats.value
        if z - a > _MAX_SMALL_MEMBER:
            raise JsonShapeError(f"categories is {z - a} bytes, too big to repeat in every part")
        with path.open("rb") as f:
            f.seek(a)
            head_ann = b'{"categories": ' + f.read(z - a) + b', "annotations": ['
    dest_dir.mkdir(parents=True, exist_ok=True)
    for key in _PARTED:
        m = members.get(key)
        if m is not None and not m.is_array:
            raise JsonShapeError(f"{key} is not an array")
        if key == "annotations" and cats is not None and (m is None or not m.elements):
            # no annotations: one part that carries the categories alone, so they are still counted
            part = dest_dir / f"{key}-0.json"
            copy_span(path, 0, 0, part, head_ann, b"]}")
            yield key, part, cats.value
            continue
        if m is None:
            continue
        head = b'{"images": [' if key == "images" else head_ann
        for k, (a, z) in enumerate(m.elements):
            part = dest_dir / f"{key}-{k}.json"
            copy_span(path, a, z, part, head, b"]}")
            yield key, part, (a, z)
