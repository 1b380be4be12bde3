"""Ctrl-C (and SIGTERM) where Python cannot simply raise it.

While a cluster of processes starts or stops: a terminal's Ctrl-C goes to every process of its
foreground group: to this one, at any moment of a cluster's start or shutdown (an interrupted
start leaves a half-made cluster that Dask's exit hook then fails to close, with a traceback),
and to the worker processes of a local cluster (each of which would print a traceback of its
own). So the work that starts or stops a cluster runs on a thread of its own on which SIGINT is
blocked, and the threads and processes that work starts inherit the blocked signal: the workers
leave the interrupt to this process, which stops them. This thread waits meanwhile; an interrupt
is noted, the start or stop completes, and the caller then stops what was started and raises
``KeyboardInterrupt``. A second Ctrl-C stops waiting at once (worker processes watch their
parent and exit with it).

While compiled kernels run on the main thread (where Python runs signal handlers): a kernel runs
no Python, so the interrupt is handled at the first Python that runs after it, which is numba
converting the kernel's results into Python objects (it calls Python to fetch the array type).
Raised there, the interrupt is not checked by numba's conversion of a tuple of results: the call
comes back as a ``SystemError`` (:func:`interrupt_behind` finds the interrupt behind it) or, when
a later conversion has cleared the error, as a tuple holding a NULL, which crashes the process
when it is unpacked. Raised inside llvmlite's ``__del__`` (on a first run, while numba
compiles), it leaves LLVM memory to be freed twice, which aborts the process; in any other
``__del__`` Python prints it and drops it. :func:`kernel_safe_signals` (used by
:func:`call_interruptibly`, and for the whole process by the command line) wraps the handlers so
that an interrupt landing in such code is raised at the first call or return outside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .base import EngineNotice

T = TypeVar("T")

_CAN_BLOCK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGINT")
#: how long (in tenths of a second) a helper waits to be told to start, when a Ctrl-C stopped the
#: thread that started it before it could say so
_GO_POLLS = 600


class Abandoned(TimeoutError):
    """``run_apart`` stopped waiting for a function that did not finish within its deadline."""


def run_apart(fn: Callable[[], T], *, name: str, spawns: bool = False, deadline: float | None = None,
              grace: float | None = None) -> tuple[T, bool]:
    """``fn()`` on a thread that never receives SIGINT, waited for here; returns its result and
    whether a Ctrl-C came meanwhile. An error of ``fn`` is raised here (``KeyboardInterrupt``
    instead when a Ctrl-C came too). ``spawns``: ``fn`` starts processes with multiprocessing.

    For an ``fn`` that may never return (a network handshake with a peer that says nothing):
    after ``deadline`` seconds it is abandoned, its daemon thread left to the process's exit, and
    :class:`Abandoned` raised; after a first Ctrl-C or SIGTERM it gets ``grace`` seconds more,
    then that interrupt is raised (without ``grace`` it is waited for, and a second one ends the
    wait)."""
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
    first: KeyboardInterrupt | None = None
    try:
        go.set()
    except KeyboardInterrupt as e:
        if not go.is_set():
            raise
        first = e
    interrupted = _wait(done, first, name=name, deadline=deadline, grace=grace)
    error = box.pop("error", None)
    if error is not None:
        try:
            if interrupted:
                raise KeyboardInterrupt from None
            raise error
        finally:
            error = None  # no cycle through this frame: it would keep what ``fn`` half-made alive
    return box.pop("value"), interrupted


def _wait(done: threading.Event, first: KeyboardInterrupt | None, *, name: str, deadline: float | None,
          grace: float | None) -> bool:
    """Wait for ``done`` as :func:`run_apart` says; returns whether an interrupt came (``first``:
    one that came before the wait)."""
    started = stop = time.monotonic()
    # An Event, not Thread.join: a join cut short by Ctrl-C can report a running thread as stopped.
    while not done.is_set():
        try:
            done.wait(0.1)
        except KeyboardInterrupt as e:
            if first is not None:
                raise
            first, stop = e, time.monotonic()
        if done.is_set():
            break
        if first is not None and grace is not None and time.monotonic() - stop > grace:
            raise first
        if deadline is not None and time.monotonic() - started > deadline:
            raise Abandoned(f"{name} did not finish within {deadline:g} s")
    return first is not None


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
    """``fn(*args)`` (work that calls compiled kernels on this thread), with the signal handlers
    of :func:`kernel_safe_signals`; an interrupt that still comes back from a kernel's call as
    a ``SystemError`` is raised as itself (:func:`interrupt_behind`)."""
    try:
        with kernel_safe_signals():
            return fn(*args)
    except SystemError as e:
        interrupt = interrupt_behind(e)
        if interrupt is None:
            raise
    raise interrupt  # outside the handler: the SystemError, which refers to it, is not kept as its context


#: the signals whose Python handlers :func:`kernel_safe_signals` wraps
_WRAPPED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


def _unsafe_code() -> tuple[Any, str | None]:
    """The code object of numba's ``_numba_unpickle`` (the Python that compiled code calls while
    it converts a kernel's results) and the folder of llvmlite's bindings (whose objects free
    LLVM memory in ``__del__``: cut short there, they free it twice), where loaded."""
    serialize = sys.modules.get("numba.core.serialize")
    ffi = sys.modules.get("llvmlite.binding.ffi")
    code = getattr(getattr(serialize, "_numba_unpickle", None), "__code__", None)
    folder = os.path.dirname(ffi.__file__) + os.sep if ffi is not None and ffi.__file__ else None
    return code, folder


def in_unsafe_code(frame: Any) -> bool:
    """Whether ``frame`` runs, at any depth, in code that an exception raised by a signal
    handler would leave broken (:func:`_unsafe_code`), or in a ``__del__``, where Python would
    only print the interrupt and go on ("Exception ignored")."""
    code, folder = _unsafe_code()
    return any(f.f_code is code or f.f_code.co_name == "__del__"
               or (folder is not None and f.f_code.co_filename.startswith(folder)) for f in _stack(frame))


def _stack(frame: Any) -> Iterator[Any]:
    """``frame`` and the frames that called it, innermost first."""
    while frame is not None:
        yield frame
        frame = frame.f_back


#: how long after an interrupt that landed in unsafe code it is sent again, when a profiler
#: written in C (cProfile before Python 3.12) watches this thread
RESEND_DELAY_S = 0.002


def _first_terminate(signum: int) -> bool:
    return signum != getattr(signal, "SIGTERM", None)


class _Held:
    """The profile function that holds the signals that landed in unsafe code and runs their
    handlers at the first call or return outside it (SIGTERM first: the first handler that
    raises ends it, and its exception is raised in the frame of that event). A profile function
    that was there already goes on getting every event, and is put back."""

    __slots__ = ("chained", "pending")

    def __init__(self, chained: Callable[..., Any] | None) -> None:
        self.chained = chained
        self.pending: dict[int, Callable[[int, Any], Any]] = {}

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if self.chained is not None:
            self.chained(frame, event, arg)
        if not (in_unsafe_code(frame) or _in_handler(frame)):
            self.release(frame)

    def release(self, frame: Any) -> None:
        sys.setprofile(self.chained)
        for signum in sorted(self.pending, key=_first_terminate):
            self.pending[signum](signum, frame)


class KernelSafeHandler:
    """A signal handler that runs ``previous`` (the handler it replaced), except in unsafe code
    (:func:`in_unsafe_code`): the signal is then held by a profile function of this thread
    (:class:`_Held`) until the first call or return outside it. Under a profiler written in C,
    which no Python function can stand in for, it is sent again a moment later instead."""

    __slots__ = ("previous",)

    def __init__(self, previous: Callable[[int, Any], Any]) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: Any) -> Any:
        profiler = sys.getprofile()
        held = profiler if isinstance(profiler, _Held) else None
        if held is not None:
            held.pending.setdefault(signum, self.previous)
            if not in_unsafe_code(frame):
                held.release(frame)
            return None
        if not in_unsafe_code(frame):
            return self.previous(signum, frame)
        if profiler is None or callable(profiler):
            held = _Held(profiler)
            held.pending[signum] = self.previous
            sys.setprofile(held)
            return None
        timer = threading.Timer(RESEND_DELAY_S, signal.raise_signal, (signum,))
        timer.daemon = True
        try:
            timer.start()
        except RuntimeError:  # no new thread while Python shuts down: handled here after all
            return self.previous(signum, frame)
        return None


def _in_handler(frame: Any) -> bool:
    """Whether ``frame`` runs inside :class:`KernelSafeHandler` (which takes a held signal's
    place itself: see its ``__call__``)."""
    code = KernelSafeHandler.__call__.__code__
    return any(f.f_code is code for f in _stack(frame))


def protect_kernel_calls() -> Callable[[], None]:
    """Wrap this process's Python handlers of SIGINT and SIGTERM in :class:`KernelSafeHandler`
    (on the main thread, where they run; ignored and default actions stay as they are).
    Returns the function that puts back what it replaced, where no one has changed it since."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    replaced: list[tuple[int, KernelSafeHandler]] = []
    for signum in _WRAPPED:
        handler = signal.getsignal(signum)
        if callable(handler) and not isinstance(handler, KernelSafeHandler):
            safe = KernelSafeHandler(handler)
            signal.signal(signum, safe)
            replaced.append((signum, safe))

    def restore() -> None:
        for number, ours in replaced:
            previous = ours.previous
            if signal.getsignal(number) is ours:
                signal.signal(number, previous)

    return restore


@contextlib.contextmanager
def kernel_safe_signals() -> Iterator[None]:
    """A block during which a Ctrl-C or SIGTERM is never handled inside the conversion of a
    compiled kernel's results (:func:`protect_kernel_calls`, undone at the end)."""
    restore = protect_kernel_calls()
    try:
        yield
    finally:
        restore()
