"""UstarWriter: the same bytes as webdataset's TarWriter (what the shard writer used before), offsets, tar digest."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from xvlm.data.shards.ustar import UstarWriter, member_header, read_members, tar_digest, tobuf_header

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
    assert digest == tar_digest(tmp_path / "o.tar")
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


def test_tar_digest_by_hand(tmp_path: Path) -> None:
    """One sample: sha256 of header, sha256(data), padding per member, then the end bytes as they are."""
    jpg, js = b"\xff\xd8abc", b'{"k":1}'
    data, digest, _ = _ours(tmp_path / "o.tar", [("s", jpg, js)])
    sha = lambda b: hashlib.sha256(b).digest()  # noqa: E731
    want = hashlib.sha256(member_header("s.jpg", 5) + sha(jpg) + bytes(507)
                          + member_header("s.json", 7) + sha(js) + bytes(505)
                          + bytes(tarfile.RECORDSIZE - 4 * 512)).hexdigest()
    assert len(data) == tarfile.RECORDSIZE and digest == want == tar_digest(tmp_path / "o.tar")
    assert digest != hashlib.sha256(data).hexdigest()  # not the plain file hash, by definition


def test_given_digests_equal_computed(tmp_path: Path) -> None:
    with open(tmp_path / "g.tar", "wb", buffering=0) as f:
        tw = UstarWriter(f.fileno())
        for k, jpg, js in SAMPLES:
            tw.add_sample(k, (("jpg", jpg), ("json", js)), (hashlib.sha256(jpg).digest(),))
        given = tw.close()
    assert given == _ours(tmp_path / "o.tar", SAMPLES)[1]


@pytest.mark.parametrize("where", ["data", "padding", "header", "end"])
def test_tar_digest_sees_any_changed_byte(tmp_path: Path, where: str) -> None:
    data, digest, offs = _ours(tmp_path / "o.tar", SAMPLES)
    pos = {"data": offs[2][0] + 3, "padding": offs[2][0] + len(SAMPLES[2][1]) + 1,
           "header": offs[2][0] - 512 + 2, "end": len(data) - 1}[where]
    bad = bytearray(data)
    bad[pos] ^= 0x01
    (tmp_path / "bad.tar").write_bytes(bytes(bad))
    assert tar_digest(tmp_path / "bad.tar") != digest


def test_tar_digest_refuses_truncated(tmp_path: Path) -> None:
    data, _, offs = _ours(tmp_path / "o.tar", SAMPLES)
    for cut in (offs[1][0] + 10, offs[-1][-1] + 512):
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated"):
            tar_digest(tmp_path / "cut.tar")


def _tarfile_members(path: Path) -> list[tuple[str, int, int]]:
    with tarfile.open(path, "r:") as tf:
        return [(m.name, m.offset_data, m.size) for m in tf.getmembers()]


def test_read_members_equals_tarfile(tmp_path: Path) -> None:
    """Differential: our writer's archives (empty data, exact blocks, non-ASCII, a name split into the
    ustar prefix) list the same (name, offset, size) as tarfile's getmembers."""
    samples = [*SAMPLES, ("p" * 120 + "/q", b"z" * 3, b"{}")]  # > 100 bytes: ustar prefix + name
    path = tmp_path / "s.tar"
    _ours(path, samples)
    got = read_members(path)
    assert got == _tarfile_members(path)
    assert [n for n, _, _ in got][-2:] == ["p" * 120 + "/q.jpg", "p" * 120 + "/q.json"]
    assert got[:3] == [("a.jpg", 512, 0), ("a.json", 1024, 2), ("b/c.jpg", 2048, 512)]  # hand-computed


def test_read_members_falls_back_to_tarfile_for_other_archives(tmp_path: Path) -> None:
    """A pax long-name member (not something UstarWriter writes) is listed exactly as tarfile lists it."""
    path = tmp_path / "pax.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("short.jpg", b"ab"), ("n" * 300 + ".json", b"{}")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert read_members(path) == _tarfile_members(path) and read_members(path)[1][0] == "n" * 300 + ".json"


def test_read_members_refuses_a_corrupt_or_truncated_archive(tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    data, _, _ = _ours(path, SAMPLES)
    second = 512  # a.jpg is empty: a.json's header follows its own at byte 512
    bad = bytearray(data)
    bad[second + 10] ^= 0xFF  # a name byte of the second header: its checksum no longer holds
    (tmp_path / "bad.tar").write_bytes(bytes(bad))
    with pytest.raises(tarfile.ReadError, match=f"checksum at byte {second}"):
        read_members(tmp_path / "bad.tar")
    (tmp_path / "cut.tar").write_bytes(data[:second + 700])
    with pytest.raises(tarfile.ReadError, match="truncated tar"):
        read_members(tmp_path / "cut.tar")
