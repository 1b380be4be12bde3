"""Ctrl-C and SIGTERM in the ``bytepiece`` process: SIGTERM raised as an interrupt so that
every cleanup runs, interrupts that land where Python cannot raise them, and the quiet exit
once the command is over."""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from .messages import note


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is, so that every cleanup path (temporary
    files, spill directories, Dask clusters) runs before the process exits with status 143."""


#: interrupts that Python could not raise where they landed (see :func:`handle_sigterm`)
_swallowed: list[KeyboardInterrupt] = []


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def _unraisable(hook: Any) -> Any:
    def keep_interrupts(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _swallowed.append(unraisable.exc_value)
        else:
            hook(unraisable)

    return keep_interrupts


def handle_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` (a SIGTERM a parent chose to ignore stays ignored).
    A Ctrl-C or SIGTERM can also land where Python cannot raise it: in a callback from C, such
    as llvmlite's while numba compiles on a first run. Python would print "Exception ignored"
    and the interrupted code then fails with an error of its own; that error is reported as the
    interrupt it came from (:func:`_failure`), without the message. Neither is handled while a
    compiled kernel's results are converted (``bytepiece.engine.interrupts``)."""
    from bytepiece.engine.interrupts import protect_kernel_calls

    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        pass
    protect_kernel_calls()  # for the whole process: kernels run on the main thread in many places
    sys.unraisablehook = _unraisable(sys.unraisablehook)


@contextlib.contextmanager
def result_stands() -> Iterator[None]:
    """What a command does after its output is committed (notes, its summary): a Ctrl-C or
    SIGTERM there ends that, not the command. The output is complete and stays, a note says so,
    and the exit status is 0, as for any complete run."""
    from bytepiece.engine.interrupts import interrupt_behind

    try:
        yield
    except (KeyboardInterrupt, SystemError) as e:
        interrupt = e if isinstance(e, KeyboardInterrupt) else interrupt_behind(e)
        if interrupt is None:
            raise
        word = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        note(f"{word} after the output was written; the result stands")


#: set by :func:`quiet_exit` in a process that ends with its command (not in tests that run commands in-process)
_quiet_exit = False


def exits_quietly() -> bool:
    return _quiet_exit


def swallowed_interrupt() -> KeyboardInterrupt | None:
    """The last interrupt that landed where Python could not raise it (:func:`handle_sigterm`)."""
    return _swallowed[-1] if _swallowed else None


def quiet_exit() -> None:
    """For ``bytepiece`` itself, whose process ends when its command does: once the command is
    over, a Ctrl-C or SIGTERM no longer changes how it ends. The work is done (a ``note:``
    says the result stands) or its error has been reported, but the process still has to exit
    (join threads, run exit hooks, tear down modules), and an interrupt meanwhile would print an
    "Exception ignored" traceback or, late in the exit, end the process with status 130 anyway:
    Python gives signals back to the system's default action while it tears modules down (which
    takes a while after numba or Dask was used). The last exit hook (registered first, it runs
    last) ignores them instead."""
    global _quiet_exit
    _quiet_exit = True
    atexit.register(_ignore_interrupts)


def exit_quietly(completed: bool) -> None:
    _forget_unhandled_interrupt()
    noted = False

    def late(signum: int, frame: Any) -> None:
        nonlocal noted
        if completed and not noted:
            noted = True
            word = "terminated" if signum == getattr(signal, "SIGTERM", None) else "interrupted"
            try:
                note(f"{word} after the work was complete, while exiting; the result stands")
            except (OSError, ValueError):
                pass

    _set_interrupt_handlers(late)


def _forget_unhandled_interrupt() -> None:
    """CPython ends a process with SIGINT (status -2 to its parent, not the command's 130 or 0)
    once a Ctrl-C has escaped code it ran from a string (``exec`` of generated code, as numba and
    the standard library do), even one handled later: it keeps a flag for that, which each such
    run resets first. One empty run resets it, and the process exits with the command's status."""
    exec("None", {})  # noqa: S102


def _ignore_interrupts() -> None:
    _set_interrupt_handlers(signal.SIG_IGN)


def _set_interrupt_handlers(handler: Any) -> None:
    """``handler`` for SIGINT and SIGTERM, where this process handles them (one that a parent
    chose to ignore stays ignored)."""
    for name in ("SIGINT", "SIGTERM"):
        try:
            signum = getattr(signal, name)
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, handler)
        except (ValueError, OSError, AttributeError):  # not the main thread, or no such signal here
            pass


