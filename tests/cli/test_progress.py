"""Progress of long steps (xvlm.progress): count, rate and ETA on a rich bar or as log lines; off by default."""

from __future__ import annotations

import contextvars
import io
import subprocess
import sys
import threading
from pathlib import Path

from PIL import Image
from rich.console import Console

from xvlm import progress
from xvlm.data.lake.images import check_images
from xvlm.train.config import PretrainConfig
from xvlm.train.loop import ProgressCallback, RunInfo, TrainResult


class FakeClock:
    """A clock the test moves by hand, so rates and ETAs are exact."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_log_reporter_lines_have_count_rate_eta_and_fields() -> None:
    clock, lines = FakeClock(), []
    with progress.use(progress.LogReporter(lines.append, every_s=2.0, clock=clock)), \
            progress.task("train", total=10, unit="step") as bar:
        for i in range(4):
            clock.t += 0.5  # 2 steps/s
            bar.advance(loss=1.0 / (i + 1))
    # one throttled line after 2 s (4 steps), then the final line
    assert lines == [
        "train: 4/10 step (40%), 2 step/s, elapsed 0:00:02, ETA 0:00:03, loss=0.25",
        "train: 4/10 step (40%), 2 step/s, elapsed 0:00:02, loss=0.25, done",
    ]


def test_rich_reporter_renders_total_rate_and_elapsed_to_a_file() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False)
    with progress.use(progress.RichReporter(console=console)), \
            progress.task("write shards", total=50, unit="sample") as bar:
        for _ in range(50):
            bar.advance(loss=0.5)
        with progress.task("inner", total=3, unit="x") as inner:  # nested: removed when done
            inner.advance(3)
    text = buf.getvalue()
    assert "write shards" in text and "50/50" in text, text
    assert "sample/s" in text and "? sample/s" not in text, text  # a measured rate
    assert "done in 0:00:0" in text and "loss=0.5" in text, text
    assert "inner" not in text, text


def test_default_is_silent_and_track_yields_every_item() -> None:
    assert isinstance(progress.current(), progress.NullReporter)
    assert list(progress.track(iter(range(5)), "x")) == [0, 1, 2, 3, 4]


def test_reporter_reaches_threads_started_with_a_copied_context() -> None:
    """What Prefect's ThreadPoolTaskRunner does: ``copy_context().run`` in a worker thread."""
    lines: list[str] = []
    with progress.use(progress.with_log(lines.append, every_s=1e9)):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(lambda: list(progress.track([1, 2, 3], "shard 00007")),))
    t.start()
    t.join()
    assert len(lines) == 1 and lines[0].startswith("shard 00007: 3/3 it (100%)"), lines
    assert isinstance(progress.current(), progress.NullReporter)  # reset after the with block


def test_check_images_reports_one_unit_per_image(tmp_path: Path) -> None:
    Image.new("RGB", (4, 3)).save(tmp_path / "a.jpg")
    lines: list[str] = []
    with progress.use(progress.LogReporter(lines.append, every_s=1e9)):
        table = check_images(tmp_path, [("a", "a.jpg"), ("b", "missing.jpg")], label="coco: check images")
    assert table.column("status").to_pylist() == ["ok", "missing"]
    assert len(lines) == 1 and lines[0].startswith("coco: check images: 2/2 image (100%)"), lines


def test_train_progress_callback_counts_steps_from_the_resume_point(tmp_path: Path) -> None:
    clock, lines = FakeClock(), []
    with progress.use(progress.LogReporter(lines.append, every_s=1e9, clock=clock)):
        cb = ProgressCallback()
        cb.on_train_start(RunInfo(PretrainConfig(steps=10), {}, 0, 1, 4, tmp_path))
        clock.t += 1.0
        cb.on_step_end(6, {"loss": 2.5, "samples_per_s": 32.0})
        clock.t += 1.0
        cb.on_train_end(TrainResult(8, 8, [], None, 2.0, 32.0, tmp_path))
    # resumed at step 4: 4 steps done in 2 s -> 2 step/s
    assert lines == ["train: 8/10 step (80%), 2 step/s, elapsed 0:00:02, loss=2.5 samples_s=32, done"]


def test_cli_progress_flag_prints_a_bar_to_stderr(tmp_path: Path) -> None:
    from xvlm.data.sample_corpus import write_sample_corpus

    raw = write_sample_corpus(tmp_path / "raw", seed=0)
    args = [sys.executable, "-m", "flows.cli"]
    on = subprocess.run([*args, "--progress", "ingest", str(raw), str(tmp_path / "lake"), "-s", "coco", "-s", "vg"],
                        capture_output=True, text=True, timeout=120)
    assert on.returncode == 0, on.stderr
    assert "ingest" in on.stderr and "2/2" in on.stderr and "source/s" in on.stderr, on.stderr
    assert "done in" in on.stderr, on.stderr
    # default under a pipe (not a terminal): no bar
    off = subprocess.run([*args, "ingest", str(raw), str(tmp_path / "lake"), "-s", "coco", "-s", "vg", "--force"],
                         capture_output=True, text=True, timeout=120)
    assert off.returncode == 0, off.stderr
    assert "source/s" not in off.stderr, off.stderr
