"""Progress of long steps (ingest, shard writing, training, evaluation): rate, ETA, a few live fields.

Why an ambient reporter: the long loops sit deep in the library (a shard's sample loop, the training
step loop, an evaluation's batch loop) and are reached through Prefect tasks and several layers of
calls. Threading a callback argument through every layer would change a dozen signatures, so a
loop instead asks :func:`task` for a handle from the reporter *currently in use* (a ``ContextVar``):

    with progress.task("write shard 3", total=len(rows), unit="sample") as bar:
        for row in rows:
            ...
            bar.advance()

By default the reporter is :class:`NullReporter`: the handle does nothing, so the library, the tests
and any non-interactive run print nothing. A caller turns progress on with ``with use(reporter):``:

- the CLI uses :class:`RichReporter` (a ``rich.progress`` bar on stderr) when stderr is a terminal or
  ``--progress`` is given;
- a Prefect flow uses :class:`LogReporter` around ``get_run_logger().info`` (a throttled line with
  count, rate and ETA every ``every_s`` seconds), ``tee``'d with whatever reporter was already active.

``ContextVar`` values are copied into Prefect's task threads (``ThreadPoolTaskRunner`` submits with
``contextvars.copy_context()``), so a reporter set in a flow reaches the tasks it submits. The
library never imports Prefect: a log function is just ``Callable[[str], None]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class TaskHandle(Protocol):
    """One running step: advance it by ``n`` units, optionally updating live fields (e.g. ``loss``)."""

    def advance(self, n: float = 1, **fields: Any) -> None: ...


class Reporter(Protocol):
    """Something that can show the progress of several (possibly concurrent) steps."""

    def task(self, description: str, total: float | None, unit: str = "it",
             completed: float = 0) -> contextlib.AbstractContextManager[TaskHandle]: ...


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` (``-:--:--`` when unknown), the same shape as rich's time columns."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_rate(rate: float | None, unit: str) -> str:
    """``12.3 step/s``, ``2,841 image/s`` (no exponent notation), ``? unit/s`` when not known yet."""
    if rate is None:
        return f"? {unit}/s"
    return f"{rate:,.0f} {unit}/s" if rate >= 100 else f"{rate:.3g} {unit}/s"


def format_fields(fields: dict[str, Any]) -> str:
    """``loss=1.234 lr=1e-04``: floats with 4 significant digits, the rest as ``str``."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


class _NullHandle:
    def advance(self, n: float = 1, **fields: Any) -> None:
        return None


class NullReporter:
    """Reports nothing (the default): the loops pay one no-op call per advance."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None, unit: str = "it",
             completed: float = 0) -> Iterator[TaskHandle]:
        yield _NullHandle()


class _Meter:
    """Count, mean rate since the start and ETA of one step (shared by the log reporter)."""

    def __init__(self, total: float | None, completed: float, clock: Callable[[], float]) -> None:
        self.total, self.completed, self.start_completed = total, completed, completed
        self.clock = clock
        self.t0 = clock()
        self.fields: dict[str, Any] = {}

    def rate(self) -> float | None:
        dt = self.clock() - self.t0
        done = self.completed - self.start_completed
        return done / dt if dt > 0 and done > 0 else None

    def eta(self) -> float | None:
        r = self.rate()
        if self.total is None or not r:
            return None
        return max(self.total - self.completed, 0) / r


class _LogHandle:
    def __init__(self, reporter: LogReporter, description: str, unit: str, meter: _Meter) -> None:
        self.reporter, self.description, self.unit, self.meter = reporter, description, unit, meter
        self.last = meter.t0
        self.lock = threading.Lock()

    def line(self, final: bool = False) -> str:
        m = self.meter
        rate = m.rate()
        count = f"{m.completed:g}/{m.total:g}" if m.total is not None else f"{m.completed:g}"
        pct = f" ({100 * m.completed / m.total:.0f}%)" if m.total else ""
        text = (f"{self.description}: {count} {self.unit}{pct}, "
                f"{format_rate(rate, self.unit)}, "
                f"elapsed {format_duration(m.clock() - m.t0)}"
                + ("" if final else f", ETA {format_duration(m.eta())}"))
        return text + (f", {format_fields(m.fields)}" if m.fields else "")

    def advance(self, n: float = 1, **fields: Any) -> None:
        with self.lock:
            self.meter.completed += n
            self.meter.fields.update(fields)
            now = self.meter.clock()
            if now - self.last < self.reporter.every_s:
                return
            self.last = now
            text = self.line()
        self.reporter.log(text)


class LogReporter:
    """Progress as log lines: one every ``every_s`` seconds per step, plus one when the step ends.

    For Prefect flows (``LogReporter(get_run_logger().info)``) and any non-interactive log, where a
    redrawn bar would be noise.
    """

    def __init__(self, log: Callable[[str], None], every_s: float = 10.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.log, self.every_s, self.clock = log, every_s, clock

    @contextlib.contextmanager
    def task(self, description: str, total: float | None, unit: str = "it",
             completed: float = 0) -> Iterator[TaskHandle]:
        handle = _LogHandle(self, description, unit, _Meter(total, completed, self.clock))
        yield handle
        self.log(handle.line(final=True) + ", done")  # the final line: count, mean rate, total time


class RichReporter:
    """A ``rich.progress`` display (on stderr unless a console is given) shared by concurrent steps.

    The display starts with the first step and stops when the last one ends, so a reporter can be
    installed for a whole CLI command. An outermost step stays on screen when finished (its count,
    rate and time remain visible); a step started inside another (one shard of the shard writing, the
    image checks of one ingested source) is removed when it ends, so thousands of shards do not leave
    thousands of lines. ``transient=True`` removes every step when it ends.
    """

    def __init__(self, console: Any | None = None, transient: bool = False, refresh_per_second: float = 4) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.transient = transient
        self.refresh_per_second = refresh_per_second
        self._lock = threading.Lock()
        self._active = 0
        self._progress: Any = None

    def _columns(self) -> list[Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn
        from rich.text import Text

        class RateColumn(ProgressColumn):
            """Units per second: rich's windowed speed while running, the mean rate once finished."""

            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                if speed is None and task.elapsed:
                    speed = (task.completed - task.fields.get("start_completed", 0)) / task.elapsed or None
                return Text(format_rate(speed, task.fields.get("unit", "it")), style="progress.data.speed")

        class EtaColumn(ProgressColumn):
            """``ETA h:mm:ss`` while running, ``done in h:mm:ss`` (elapsed) once finished."""

            def render(self, task: Any) -> Text:
                if task.finished:
                    return Text(f"done in {format_duration(task.finished_time)}", style="progress.elapsed")
                return Text(f"ETA {format_duration(task.time_remaining)}", style="progress.remaining")

        return [TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(), RateColumn(),
                EtaColumn(), TextColumn("{task.fields[info]}")]

    @contextlib.contextmanager
    def task(self, description: str, total: float | None, unit: str = "it",
             completed: float = 0) -> Iterator[TaskHandle]:
        from rich.progress import Progress

        with self._lock:
            if self._progress is None:
                self._progress = Progress(*self._columns(), console=self.console,
                                          refresh_per_second=self.refresh_per_second)
                self._progress.start()
            progress = self._progress
            remove_when_done = self.transient or self._active > 0
            self._active += 1
            task_id = progress.add_task(description, total=total, completed=completed, unit=unit, info="",
                                        start=True)
            progress.update(task_id, start_completed=completed)
        try:
            yield _RichHandle(progress, task_id)
        finally:
            with self._lock:
                if remove_when_done:
                    progress.remove_task(task_id)
                self._active -= 1
                if self._active == 0:
                    progress.stop()
                    self._progress = None


class _RichHandle:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: float = 1, **fields: Any) -> None:
        if fields:
            self.progress.update(self.task_id, advance=n, info=format_fields(fields))
        else:
            self.progress.advance(self.task_id, n)


class TeeReporter:
    """Every step goes to each of several reporters (e.g. the CLI's bar and a flow's log)."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = [r for r in reporters if not isinstance(r, NullReporter)]

    @contextlib.contextmanager
    def task(self, description: str, total: float | None, unit: str = "it",
             completed: float = 0) -> Iterator[TaskHandle]:
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(r.task(description, total, unit, completed)) for r in self.reporters]
            yield _TeeHandle(handles)


class _TeeHandle:
    def __init__(self, handles: list[TaskHandle]) -> None:
        self.handles = handles

    def advance(self, n: float = 1, **fields: Any) -> None:
        for h in self.handles:
            h.advance(n, **fields)


_NULL = NullReporter()
_current: contextvars.ContextVar[Reporter] = contextvars.ContextVar("xvlm_progress", default=_NULL)


def current() -> Reporter:
    """The reporter in use in this context (``NullReporter`` unless a caller installed one)."""
    return _current.get()


@contextlib.contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the ``with`` block (and the Prefect tasks submitted from it)."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def with_log(log: Callable[[str], None], every_s: float = 10.0) -> Reporter:
    """The current reporter plus a :class:`LogReporter` on ``log`` (what a Prefect flow installs)."""
    return TeeReporter(current(), LogReporter(log, every_s))


def task(description: str, total: float | None, unit: str = "it",
         completed: float = 0) -> contextlib.AbstractContextManager[TaskHandle]:
    """A step of the current reporter (see the module docstring)."""
    return current().task(description, total, unit, completed)


def track(items: Iterable[T], description: str, total: float | None = None, unit: str = "it") -> Iterator[T]:
    """Yield ``items``, advancing a step of the current reporter by one per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total, unit) as bar:
        for item in items:
            yield item
            bar.advance()
