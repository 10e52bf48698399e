"""scan_utf8 (xvlm/data/lake/fingerprint.py): the streamed UTF-8 check with its ASCII fast path gives
the same verdict and byte offset as decoding the whole file at once, whatever the block boundaries."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from xvlm.data.lake import fingerprint as fp


def _reference(data: bytes) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end == len(data) and exc.reason == "unexpected end of data":
            return "not valid UTF-8 (truncated multi-byte character at the end)"
        return f"not valid UTF-8 at byte {exc.start}"
    return None


CASES = {
    "ascii": b'[{"phrase": "a man"}]' * 3,
    "two_byte_char_across_blocks_then_ascii": b"abcdefg\xc3\xa9" + b"x" * 20,
    "lead_byte_then_ascii_block": b"abcdefg\xc3" + b"xxxxxxxx" * 3,  # the block after is ASCII: invalid
    "bad_byte_in_later_block": b"a" * 17 + b"\xff" + b"b" * 5,
    "truncated_at_end": b"a" * 15 + b"\xe2\x82",
    "three_byte_char_split_over_three_blocks": b"a" * 7 + b"\xe2\x82\xac" + b"a" * 30,
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("chunk", [1, 2, 8, 1 << 24])
def test_scan_utf8_matches_a_whole_file_decode(name: str, chunk: int, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_CHUNK", chunk)
    data = CASES[name]
    p = tmp_path / "f.json"
    p.write_bytes(data)
    h = hashlib.sha256()
    assert fp.scan_utf8(p, h) == _reference(data)
    if _reference(data) is None:
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()  # every block hashed, in order
    assert fp.utf8_verdict(p) == (True, _reference(data))


def test_scan_utf8_on_random_mixed_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(0)
    alphabet = [b"a", b"{", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xff", b"\xc3", b"\x80"]
    p = tmp_path / "f.json"
    for i in range(300):
        data = b"".join(rng.choice(alphabet[:5] if i % 3 else alphabet) for _ in range(rng.randint(0, 40)))
        monkeypatch.setattr(fp, "_CHUNK", rng.choice([1, 3, 8, 16]))
        p.write_bytes(data)
        assert fp.scan_utf8(p) == _reference(data), data
