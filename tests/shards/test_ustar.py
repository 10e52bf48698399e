"""UstarWriter: the same bytes as webdataset's TarWriter (what the shard writer used before), offsets, hash."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from xvlm.data.shards.ustar import UstarWriter, member_header, tobuf_header

SAMPLES = [  # (key, jpg, json): empty data, exactly one block, one byte over, a long key, non-ASCII
    ("a", b"", b"{}"),
    ("b/c", b"x" * 512, b'{"k":1}'),
    ("d", bytes(range(256)) * 2 + b"!", b"[" + b"1," * 400 + b"1]"),
    ("k" * 95, b"\xff\xd8" * 700, b"{}"),
    ("caf\u00e9_\u72ac", b"jpeg", '{"t":"\u00e9"}'.encode()),
]


def _webdataset_tar(samples: list[tuple[str, bytes, bytes]]) -> bytes:
    buf = io.BytesIO()
    tw = wds.TarWriter(buf, user="", group="", mode=0o444, mtime=0, encoder=False)
    tw.tarstream.format = tarfile.USTAR_FORMAT  # what the writer set on TarWriter
    for key, jpg, js in samples:
        tw.write({"__key__": key, "jpg": jpg, "json": js})
    tw.close()
    return buf.getvalue()


def _ours(path: Path, samples: list[tuple[str, bytes, bytes]]) -> tuple[bytes, str, list[list[int]]]:
    with open(path, "wb", buffering=0) as f:
        tw = UstarWriter(f.fileno())
        offs = [tw.add_sample(k, (("jpg", jpg), ("json", js))) for k, jpg, js in samples]
        digest = tw.close()
        assert tw.offset == path.stat().st_size
    return path.read_bytes(), digest, offs


@pytest.mark.parametrize("name", ["a.jpg", "x" * 99, "y" * 100, "caf\u00e9.json", "\u72ac" * 33 + "a",
                                  "d" * 120 + "/z.jpg"])
@pytest.mark.parametrize("size", [0, 1, 511, 512, 123_456_789, 8**11 - 1])
def test_header_equals_tarfile_tobuf(name: str, size: int) -> None:
    h = member_header(name, size)
    assert len(h) == 512 and h == tobuf_header(name, size)


def test_header_errors_like_tarfile() -> None:
    with pytest.raises(ValueError):  # ustar size field overflow
        member_header("a.jpg", 8**11)
    with pytest.raises(ValueError):  # a name ustar cannot hold even with a prefix
        member_header("n" * 300, 1)


@pytest.mark.parametrize("n", [0, 1, len(SAMPLES)])
def test_same_bytes_as_webdataset_tarwriter(tmp_path: Path, n: int) -> None:
    data, digest, _ = _ours(tmp_path / "o.tar", SAMPLES[:n])
    assert data == _webdataset_tar(SAMPLES[:n])
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(data) % tarfile.RECORDSIZE == 0


def test_offsets_point_at_member_data(tmp_path: Path) -> None:
    data, _, offs = _ours(tmp_path / "o.tar", SAMPLES)
    with tarfile.open(tmp_path / "o.tar") as tf:
        got = [(m.name, m.offset_data) for m in tf.getmembers()]
    want = [(f"{k}.{ext}", off) for (k, *_), o in zip(SAMPLES, offs, strict=True) for ext, off in zip(("jpg", "json"), o,
                                                                                                   strict=True)]
    assert got == want
    for (_, jpg, js), (jo, so) in zip(SAMPLES, offs, strict=True):
        assert data[jo:jo + len(jpg)] == jpg and data[so:so + len(js)] == js
    assert [s["__key__"] for s in wds.WebDataset(str(tmp_path / "o.tar"), shardshuffle=False)] == [k for k, *_ in SAMPLES]
