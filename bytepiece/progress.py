"""Progress on long work, one style everywhere (rich): a bar per phase with totals and ETA.

Library calls show bars only when asked (or when stderr is a terminal); the CLI passes its own
stderr console. Phases with a known total (bytes of a corpus, pieces to re-segment) get a bar,
elapsed time and ETA; phases without one get a spinner with elapsed time.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[[int], None]


def _noop(_: int) -> None:
    pass


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed, missing or replaced stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def stderr_is_terminal() -> bool:
    return is_terminal(sys.stderr)


def _rate_column() -> Any:
    """Throughput in the units sizes are shown in (:mod:`bytepiece.units`: MiB/s)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from .units import format_rate

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else format_rate(speed, 1.0), style="progress.data.speed")

    return Rate()


class Progress:
    """Factory of per-phase bars; ``enabled=None`` means "when stderr is a terminal"."""

    def __init__(self, enabled: bool | None = None, console: Any = None) -> None:
        self.enabled = stderr_is_terminal() if enabled is None else bool(enabled)
        self.console = console

    def _console(self):
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)
        return self.console

    @contextlib.contextmanager
    def phase(self, description: str, total: int | None = None, *, unit: str = "bytes",
              transient: bool = False) -> Iterator[Advance]:
        """A bar for one phase; yields ``advance(n)``. ``unit`` is ``"bytes"`` or a noun (items);
        a ``transient`` bar (a step inside a phase) disappears when it is done."""
        if not self.enabled:
            yield _noop
            return
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as RichProgress,
                                   SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        columns: list[Any] = [TextColumn("{task.description:<16}")]
        if total is None:
            columns += [SpinnerColumn(), TimeElapsedColumn()]
        elif unit == "bytes":
            columns += [BarColumn(bar_width=24), DownloadColumn(binary_units=True), _rate_column(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn()]
        else:
            columns += [BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn()]
        with RichProgress(*columns, console=self._console(), transient=transient, refresh_per_second=5) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
            if total is not None:
                bar.update(task, completed=total)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A transient spinner line with the seconds elapsed (e.g. "loading kernels (compiled on the
        first run)", which takes 15-30 s of wall time on a busy machine: the clock shows that it moves)."""
        if not self.enabled:
            yield
            return
        from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with RichProgress(*columns, console=self._console(), transient=True, refresh_per_second=5) as bar:
            bar.add_task(message, total=None)
            yield


class ShardBar:
    """A phase bar over shards, in input bytes. Local workers report bytes as they read
    (:meth:`reading`); :meth:`done` adds whatever of a shard was not reported when its result
    arrives, so the bar is exact on any engine and moves within a shard where it can."""

    def __init__(self, advance: Advance) -> None:
        self._advance = advance
        self._lock = threading.Lock()
        self._reported: dict[int, int] = {}

    def reading(self, key: int, size: int) -> Advance:
        """The callback for the worker reading shard ``key`` (``size`` input bytes)."""

        def report(n: int) -> None:
            with self._lock:
                seen = self._reported.get(key, 0)
                n = min(n, size - seen)
                if n <= 0:
                    return
                self._reported[key] = seen + n
            self._advance(n)

        return report

    def done(self, key: int, size: int) -> None:
        with self._lock:
            rest = size - self._reported.pop(key, 0)
        if rest > 0:
            self._advance(rest)
