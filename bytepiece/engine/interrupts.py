"""Ctrl-C while a cluster of processes starts or stops.

A terminal's Ctrl-C goes to every process of its foreground group: to this one, at any moment of
a cluster's start or shutdown (an interrupted start leaves a half-made cluster that Dask's exit
hook then fails to close, with a traceback), and to the worker processes of a local cluster
(each of which would print a traceback of its own). So the work that starts or stops a cluster
runs on a thread of its own on which SIGINT is blocked, and the threads and processes that work
starts inherit the blocked signal: the workers leave the interrupt to this process, which stops
them. This thread waits meanwhile; an interrupt is noted, the start or stop completes, and the
caller then stops what was started and raises ``KeyboardInterrupt``. A second Ctrl-C stops
waiting at once (worker processes watch their parent and exit with it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .base import EngineNotice

T = TypeVar("T")

_CAN_BLOCK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGINT")
#: how long (in tenths of a second) a helper waits to be told to start, when a Ctrl-C stopped the
#: thread that started it before it could say so
_GO_POLLS = 600


def run_apart(fn: Callable[[], T], *, name: str, spawns: bool = False) -> tuple[T, bool]:
    """``fn()`` on a thread that never receives SIGINT, waited for here; returns its result and
    whether a Ctrl-C came meanwhile. An error of ``fn`` is raised here (``KeyboardInterrupt``
    instead when a Ctrl-C came too). ``spawns``: ``fn`` starts processes with multiprocessing."""
    box: dict[str, Any] = {}
    go, done = threading.Event(), threading.Event()

    def target() -> None:
        try:
            if spawns:
                _start_resource_tracker()
            if _CAN_BLOCK:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            for _ in range(_GO_POLLS):
                if go.wait(0.1):
                    box["value"] = fn()
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    # ``fn`` starts once ``go`` is set. A Ctrl-C can land anywhere, even inside ``set()``, but
    # the flag then tells whether ``fn`` runs (and must be waited for) or never will.
    interrupted = False
    try:
        go.set()
    except KeyboardInterrupt:
        if not go.is_set():
            raise
        interrupted = True
    # An Event, not Thread.join: a join cut short by Ctrl-C can report a running thread as stopped.
    while not done.is_set():
        try:
            done.wait(0.1)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
    error = box.pop("error", None)
    if error is not None:
        try:
            if interrupted:
                raise KeyboardInterrupt from None
            raise error
        finally:
            error = None  # no cycle through this frame: it would keep what ``fn`` half-made alive
    return box.pop("value"), interrupted


def _start_resource_tracker() -> None:
    """multiprocessing starts its resource tracker with the first process it spawns, and unblocks
    SIGINT on the spawning thread when it does; started beforehand, it leaves the mask alone."""
    try:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    except (ImportError, OSError, AttributeError):
        pass


@contextlib.contextmanager
def stands_once_committed() -> Iterator[Callable[[], None]]:
    """A block whose work ends in a commit: call the function it gives right after the commit.
    A Ctrl-C from then to the end of the block (the clean-up) no longer discards the committed
    output; a notice says it came."""
    committed = False

    def commit() -> None:
        nonlocal committed
        committed = True

    try:
        yield commit
    except KeyboardInterrupt:
        if not committed:
            raise
        warnings.warn(EngineNotice("interrupted after the output was committed, while cleaning up; the result "
                                   "stands"), stacklevel=3)


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """A block that a Ctrl-C (or a SIGTERM that Python handles) must not cut in two, such as a
    commit: its output is complete once the block returns, so an interrupt in between would
    report as stopped a run whose output is there. A signal that comes meanwhile is held and
    handled when the block has completed, as it would have been when it came (an error of the
    block goes on instead). Off the main thread, where no signal handler runs, the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    previous: dict[int, Callable[[int, Any], Any]] = {}
    for signum in [getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)]:
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, lambda number, frame: held.append((number, frame)))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for signum, frame in held[:1]:
        previous[signum](signum, frame)


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM, raised as a ``KeyboardInterrupt`` subclass) that ``error`` stands
    for, if any. A compiled kernel runs a little Python while it is called (numba converts some
    arguments and results in Python); a signal handler that raises there leaves the call
    returning a result with the exception still set, which Python reports as a ``SystemError``
    caused by the interrupt (through one such error per level of calls)."""
    seen: set[int] = set()
    while isinstance(error, SystemError) and id(error) not in seen:
        seen.add(id(error))
        cause = error.__cause__ or error.__context__
        if isinstance(cause, KeyboardInterrupt):
            return cause
        if cause is None:
            return None
        error = cause
    return None


def call_interruptibly(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, where an interrupt that came during a compiled kernel's call is raised as
    itself rather than as the ``SystemError`` Python makes of it (:func:`interrupt_behind`)."""
    try:
        return fn(*args)
    except SystemError as e:
        interrupt = interrupt_behind(e)
        if interrupt is None:
            raise
    raise interrupt  # outside the handler: the SystemError, which refers to it, is not kept as its context
