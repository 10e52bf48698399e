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
from pathlib import Path

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
    """``dest`` = ``[`` + bytes ``[start, end)`` of ``path`` + ``,`` + :func:`range_end` + ``]``.

    The body is copied in the kernel (``os.copy_file_range``: no user-space buffer; ~2x faster than
    read + write for VG's 360 MB halves), else in bounded reads."""
    with path.open("rb") as f, dest.open("wb") as g:
        g.write(b"[")
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
        g.write(b"," + range_end(token) + b"]")


def remove(paths: list[Path]) -> None:
    """Delete the range files that exist."""
    for p in paths:
        p.unlink(missing_ok=True)
