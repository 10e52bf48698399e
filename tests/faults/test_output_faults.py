"""Output faults (issue 16, item 6): a read-only or full output folder is one line naming the path
(``OutputFault``, exit 2 from the CLI), leaves no partial output, and is never retried; a recipe source
absent from the lake is an error naming it unless ``--allow-missing`` (item 7)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.retry import io_error_only
from tests.faults import makers
from tests.shards.lakefix import make_planted
from xvlm.data.shards import Recipe, build_shards, plan_build, write_shard
from xvlm.data.shards.build import read_lineage
from xvlm.errors import BadInput, MissingInput, OutputFault
from xvlm.fsio import is_transient_io, output_fault, write_text

RECIPE = Recipe(name="t", sources=("coco", "vg", "cc3m", "cc12m", "sbu"), shard_size=3, seed=7,
                leak_splits={"coco": ("val", "test"), "flickr30k": ("val", "test")})


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_planted(tmp_path_factory.mktemp("outfaults"))


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real entry point (``flows.cli.main``) in this process: (exit code, stdout, stderr)."""
    from flows import cli

    monkeypatch.setattr("sys.argv", ["xvlm", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


# ---------------------------------------------------------------- fsio and the retry policy

def test_atomic_write_into_read_only_folder(tmp_path: Path) -> None:
    target = tmp_path / "ro" / "stats.json"
    write_text(target, "old")
    with makers.unwritable(target.parent):
        with pytest.raises(OutputFault) as err:
            write_text(target, "new")
        assert makers.listing(target.parent) == ["stats.json"]  # no temporary file left
    assert target.read_text() == "old"  # untouched
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(target.parent)) and "cannot write" in msg


def test_output_fault_classification() -> None:
    for e in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC):
        f = output_fault(OSError(e, os.strerror(e), "/x/y"))
        assert isinstance(f, OutputFault) and str(f).startswith(f"/x/y: cannot write ({os.strerror(e)})")
    duck = RuntimeError('IO Error: Cannot open file "/lake/_tmp/a.parquet": No space left on device')
    assert "No space left on device" in str(output_fault(duck))
    assert output_fault(OSError(errno.EIO, "Input/output error")) is None
    assert output_fault(ValueError("bad value")) is None


@pytest.mark.parametrize("exc,retry", [
    (PermissionError(errno.EACCES, "Permission denied", "/lake"), False),
    (OSError(errno.EROFS, "Read-only file system"), False),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (MissingInput("/raw/x.json: not found"), False),  # also a FileNotFoundError: still not retried
    (BadInput("bad recipe"), False),
    (OutputFault("/lake: cannot write"), False),
    (FileNotFoundError(errno.ENOENT, "No such file"), False),
    (ValueError("a bug"), False),
    (OSError(errno.EIO, "Input/output error"), True),
    (OSError(errno.ESTALE, "Stale file handle"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (TimeoutError("timed out"), True),
])
def test_retry_only_transient_io(exc: BaseException, retry: bool) -> None:
    class State:
        def result(self) -> None:
            raise exc

    assert is_transient_io(exc) is retry
    assert io_error_only(None, None, State()) is retry


# ---------------------------------------------------------------- lake and shards folders

def test_cli_ingest_into_read_only_lake(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    raw, lake = corpus, tmp_path / "lake"
    with makers.unwritable(lake):
        code, out, err = run_cli(monkeypatch, capsys, "ingest", str(raw), str(lake), "--source", "karpathy")
        assert makers.listing(lake) == []  # nothing written
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {lake}: cannot write ("), err


def test_shards_into_read_only_out_root(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out_root = tmp_path / "shards"
    with makers.unwritable(out_root):
        with pytest.raises(OutputFault, match=f"^{out_root}: cannot write"):
            build_shards(lake, raw, out_root, RECIPE)
        assert makers.listing(out_root) == []


def test_read_only_shard_folder_leaves_no_partial_tar(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    out, plan = plan_build(lake, raw, tmp_path / "shards", RECIPE)
    (out / "shards").mkdir()
    with makers.unwritable(out / "shards"):
        with pytest.raises(OutputFault, match=f"^{out / 'shards'}"):
            write_shard(out, 0, plan)
        assert makers.listing(out / "shards") == []
    assert write_shard(out, 0, plan)["samples_written"] == plan["shard_sizes"][0]  # writable again: resumes


def test_full_disk_is_one_line_and_leaves_no_partial_output(planted: tuple[Path, Path], tmp_path: Path) -> None:
    lake, raw = planted
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root with CAP_SYS_ADMIN to mount a 48 KiB tmpfs (a full disk)")
    try:
        with pytest.raises(OutputFault, match="No space left on device") as err:
            build_shards(lake, raw, mnt, RECIPE.with_(shard_size=100))
        assert "\n" not in str(err.value) and str(mnt) in str(err.value)
        fds = [os.readlink(f) for f in Path("/proc/self/fd").iterdir() if os.path.islink(f)]
        kept = [f for f in fds if f.startswith(str(mnt)) and (".tmp" in f or f.endswith("(deleted)"))]
        assert not kept, (kept, str(err.value))  # no handle keeps a deleted temporary file's space
        left = makers.listing(mnt)
        assert not [p for p in left if p.endswith(".tmp")], left
        for tar in [p for p in left if p.endswith(".tar")]:  # any shard there is complete (stats file last)
            assert tar.replace(".tar", ".stats.json") in left
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ---------------------------------------------------------------- recipe sources missing from the lake

def _lake_without(planted: tuple[Path, Path], tmp_path: Path, source: str) -> tuple[Path, Path]:
    lake, raw = planted
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    for d in copy.glob(f"*/source={source}"):
        shutil.rmtree(d)
    (copy / "lake.duckdb").write_bytes(b"")  # the CLI only checks that it exists
    return copy, raw


def test_missing_source_is_an_error_naming_it(planted: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    lake, raw = _lake_without(planted, tmp_path, "cc12m")
    recipe = tmp_path / "r.json"
    recipe.write_text(__import__("json").dumps(RECIPE.to_dict()))
    with pytest.raises(MissingInput, match="recipe 't' source 'cc12m' is not in the lake"):
        build_shards(lake, raw, tmp_path / "out", RECIPE)
    assert not (tmp_path / "out").exists()
    code, out, err = run_cli(monkeypatch, capsys, "shards", str(lake), str(raw), str(tmp_path / "out"),
                             "--recipe", str(recipe))
    assert code == 2 and out == "" and err == (
        f"error: {lake}: recipe 't' source 'cc12m' is not in the lake; ingest it (xvlm ingest RAW_ROOT {lake} "
        "--source cc12m) or pass --allow-missing cc12m to build without it\n")
    code, _, err = run_cli(monkeypatch, capsys, "shards", str(lake), str(raw), str(tmp_path / "out"),
                           "--recipe", str(recipe), "--allow-missing", "openimages")
    assert code == 2 and err == ("error: --allow-missing openimages: not a source of recipe 't' "
                                 "(its sources: coco, vg, cc3m, cc12m, sbu)\n")
    assert not (tmp_path / "out").exists()


def test_allow_missing_is_recorded(planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    lake, raw = _lake_without(planted, tmp_path, "cc12m")
    full = build_shards(planted[0], raw, tmp_path / "full", RECIPE)
    # the flow itself is tested in tests/shards/test_flow.py; here the CLI's option reaches the build
    import flows.shards

    def run_shards(lake_root: Path, raw_root: Path, out: Path, recipe: str, allow_missing: list[str] | None,
                   **_: object) -> dict:
        return build_shards(lake_root, raw_root, out, RECIPE, allow_missing=allow_missing or ())

    monkeypatch.setattr(flows.shards, "run_shards", run_shards)
    recipe = tmp_path / "r.json"
    recipe.write_text(__import__("json").dumps(RECIPE.to_dict()))
    code, printed_text, err = run_cli(monkeypatch, capsys, "shards", str(lake), str(raw), str(tmp_path / "out"),
                                      "--recipe", str(recipe), "--allow-missing", "cc12m")
    assert code == 0 and err == ""
    printed = printed_text.splitlines()
    assert printed[0] == "built without recipe sources cc12m (not in the lake; --allow-missing)"
    (out,) = (tmp_path / "out").iterdir()
    stats = __import__("json").loads((out / "stats.json").read_text())
    assert stats["missing_sources"] == ["cc12m"] == stats["samples"]["missing_sources"]
    lin = read_lineage(out / "manifest.parquet")
    assert lin["missing_sources"] == ["cc12m"] and lin["sources"] == list(RECIPE.sources)
    assert read_lineage(Path(full["out"]) / "manifest.parquet")["missing_sources"] == []
    assert out.name != Path(full["out"]).name  # another build id
    # the planted cc12m_1 (a duplicate URL of cc3m_1) is simply absent: cc3m_1 is kept, nothing from cc12m
    keys = set(pq.read_table(out / "samples.parquet").column("image_key").to_pylist())
    assert "cc3m_1" in keys and not any(k.startswith("cc12m") for k in keys)


def test_cli_read_only_work_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A folder the CLI creates under a read-only parent (here `xvlm sample-corpus`): one line, exit 2."""
    parent = tmp_path / "ro"
    with makers.unwritable(parent):
        code, out, err = run_cli(monkeypatch, capsys, "sample-corpus", str(parent / "raw"))
        assert makers.listing(parent) == []
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {parent}: cannot write (") and "Traceback" not in err, err


def test_flow_failure_logs_carry_no_traceback_for_user_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Prefect logs a failed task/flow with ``logger.exception``: without ``--verbose`` the CLI keeps the
    line and drops the traceback for a user error (bad input, unwritable folder), not for a bug."""
    import logging

    from flows import cli

    cli._drop_user_error_tracebacks()
    log = logging.getLogger("xvlm.test.flow_failure")  # any logger: the record factory is global
    for exc, kept in ((OutputFault("/lake: cannot write"), False), (PermissionError(errno.EACCES, "denied", "/x"), False),
                      (ValueError("a bug"), True)):
        caplog.clear()
        try:
            raise exc
        except Exception:
            log.exception("Encountered exception during execution: %r", exc)
        (rec,) = caplog.records
        assert (rec.exc_info is not None) is kept and repr(exc) in rec.getMessage()
