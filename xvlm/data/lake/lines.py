"""Line-level isolation for delimited files (TSV/CSV): one bad line is quarantined, never the file.

DuckDB's strict CSV reader rejects single lines with bad UTF-8 or a wrong field count (``store_rejects``,
with their line numbers), but a few faults break the reader for the whole file or shift its line
numbers: a ``\\r\\n`` line among ``\\n`` lines ("state machine reached an invalid state"), a stray
``\\r``, a NUL byte, a blank line (silently skipped, so every later line number would be off by one).
:func:`isolate_lines` finds those with a byte scan (``bytes.find`` per 16 MiB block; a clean file is
only read, never copied) and, when there are any, writes a copy in which each such line is replaced by
a one-byte marker line that the reader rejects as a missing-columns line AT THE SAME LINE NUMBER. The
faults (line, reason, raw) are returned; ``csv_rejects.sql`` takes their reason from there.

:func:`read_class_lines` parses the OpenImages class file line by line in Python (it is small: 600 /
20K lines) with the same checks, because its names may be quoted and DuckDB's reader lets one
unbalanced quote swallow the rest of the file into one rejected "line".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

_BLOCK = 1 << 24
MARKER = b"\x01"  # no delimiter: rejected as MISSING COLUMNS by read_csv, at the line it replaces
_RAW_CHARS = 2000


@dataclass
class LineFaults:
    """Lines quarantined before the CSV reader sees them; ``path`` is the file to read (a copy if any)."""

    path: Path
    lines: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str, raw: bytes) -> None:
        self.lines.append(line)
        self.reasons.append(reason)
        self.raws.append(raw[:_RAW_CHARS].decode("utf-8", "backslashreplace"))

    def table(self) -> pa.Table:
        return pa.table({"line": pa.array(self.lines, pa.int64()), "reason": pa.array(self.reasons, pa.string()),
                         "raw": pa.array(self.raws, pa.string())})


def line_fault(line: bytes, crlf: bool) -> str | None:
    """Why one physical line (without its ``\\n``) cannot go to the reader, or None."""
    if crlf:
        if not line.endswith(b"\r"):
            return "mixed_line_ending"
        line = line[:-1]
    elif line.endswith(b"\r"):
        return "mixed_line_ending"
    if b"\r" in line:
        return "stray_carriage_return"
    if b"\x00" in line:
        return "nul_byte"
    if line == b"":
        return "blank_line"
    return None


def _needs_copy(path: Path) -> tuple[bool, bool]:
    """(any fault byte pattern present, file uses \\r\\n line endings) from a block scan."""
    crlf, prev, first = False, b"\n", True
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            if first:
                nl = block.find(b"\n")
                crlf = nl > 0 and block[nl - 1:nl] == b"\r"
                first = False
            if crlf or b"\r" in block or b"\x00" in block or b"\n\n" in block or (prev == b"\n" and block[:1] == b"\n"):
                return True, crlf
            prev = block[-1:]
    return False, crlf


def isolate_lines(path: Path, tmp_dir: Path) -> LineFaults:
    """The faults of ``path`` and the file the CSV reader should read (``path`` itself when clean)."""
    found, crlf = _needs_copy(path)
    faults = LineFaults(path)
    if not found:
        return faults
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out = tmp_dir / f"lines-{path.name}"
    n = 0
    with open(path, "rb") as f, open(out, "wb") as w:
        rest = b""
        while True:
            block = f.read(_BLOCK)
            data = rest + block
            if not block:
                lines, rest = ([data] if data else []), b""
            else:
                cut = data.rfind(b"\n")
                lines, rest = (data[:cut].split(b"\n"), data[cut + 1:]) if cut >= 0 else ([], data)
            for ln in lines:
                n += 1
                reason = line_fault(ln, crlf)
                if reason is not None:
                    faults.add(n, reason, ln)
                    w.write(MARKER + b"\n")
                else:
                    w.write((ln[:-1] if crlf else ln) + b"\n")
            if not block:
                break
    faults.path = out
    return faults


def read_class_lines(path: Path, file: str) -> pa.Table:
    """OpenImages class descriptions (``MID,name``; a ``LabelName,DisplayName`` header in V7, dropped) as
    one row per line: mid, name, locator, ord, reason (None = usable), raw. Reasons: the line faults
    above, invalid_utf8, malformed_row (unbalanced quote), wrong_column_count, invalid_id, empty_text;
    a MID listed twice -> duplicate_id after the first."""
    data = path.read_bytes()
    phys = data.split(b"\n")
    if phys and phys[-1] == b"":
        phys.pop()
    crlf = bool(phys) and phys[0].endswith(b"\r")
    cols: dict[str, list] = {k: [] for k in ("mid", "name", "file", "locator", "ord", "reason", "raw")}
    seen: set[str] = set()
    for i, ln in enumerate(phys, start=1):
        mid = name = None
        reason = line_fault(ln, crlf)
        body = ln[:-1] if crlf and ln.endswith(b"\r") else ln
        text = ""
        if reason is None:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                reason = "invalid_utf8"
        if reason is None:
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error:
                fields, reason = [], "malformed_row"
            if reason is None and len(fields) != 2:
                reason = "wrong_column_count"
            elif reason is None:
                mid, name = fields
                if i == 1 and mid == "LabelName":
                    continue  # the V7 header
                if not mid.startswith("/") or any(c.isspace() for c in mid):
                    reason = "invalid_id"
                elif not name.strip():
                    reason = "empty_text"
                elif mid in seen:
                    reason = "duplicate_id"
                else:
                    seen.add(mid)
        for k, v in (("mid", mid), ("name", name), ("file", file), ("locator", f"line {i}"), ("ord", i),
                     ("reason", reason), ("raw", None if reason is None else ln[:_RAW_CHARS].decode("utf-8", "backslashreplace"))):
            cols[k].append(v)
    return pa.table({k: pa.array(v, pa.int64() if k == "ord" else pa.string()) for k, v in cols.items()})
