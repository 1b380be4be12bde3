"""How every command ends: errors as one line and an exit status, never a traceback; and the
model a command uses when none is given."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from .messages import fail, show_warning
from .signals import Terminated, exit_quietly, exits_quietly, swallowed_interrupt
from .streams import STDOUT_FULL, ClosedStreamError, silence_stdout, stand_in_for_closed_streams, \
    stdout_is_full

F = TypeVar("F", bound=Callable[..., Any])

#: click's exception classes as typer ships them: recent typer releases vendor click (and the
#: click package may not be installed at all), older ones use it; ``typer.BadParameter`` derives
#: from the right ones in both.
ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def handle_errors(func: F) -> F:
    """Turn every error into a one-line message and exit status 1, never a traceback (set
    ``BYTEPIECE_DEBUG=1`` to see the traceback of an unexpected error). Warnings become one
    ``note:`` line each. In the ``bytepiece`` process, the exit that follows is quiet
    (:func:`quiet_exit`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        stand_in_for_closed_streams()
        completed = False
        try:
            with warnings.catch_warnings():
                warnings.showwarning = show_warning
                result = func(*args, **kwargs)
            completed = True
            return result
        except typer.Exit as e:
            completed = not e.exit_code
            raise
        except (typer.Abort, ClickException):
            raise
        except BrokenPipeError:
            silence_stdout()  # the reader went away (| head): no message, no "Exception ignored"
            raise typer.Exit(1) from None
        except (Exception, KeyboardInterrupt) as e:
            raise _failure(e) from None
        finally:
            if exits_quietly():
                exit_quietly(completed)

    return wrapper  # type: ignore[return-value]


def _failure(e: BaseException) -> typer.Exit:
    """The one-line error (and exit status) for an exception that ended a command."""
    from bytepiece.engine.interrupts import interrupt_behind
    from bytepiece.errors import BytePieceError

    e = interrupt_behind(e) or e  # a Ctrl-C that landed in a compiled kernel's call
    swallowed = swallowed_interrupt()
    if swallowed is not None and not isinstance(e, KeyboardInterrupt):  # an interrupt lost in a C callback, then this
        e = swallowed
    if isinstance(e, Terminated):
        return fail("terminated", 143)
    if isinstance(e, KeyboardInterrupt):
        return fail("interrupted", 130)
    if isinstance(e, (ClosedStreamError, BytePieceError, FileExistsError)):
        return fail(str(e))
    if isinstance(e, OSError):
        if stdout_is_full(e):
            silence_stdout()  # what is still buffered cannot go out either: no second error at exit
            return fail(STDOUT_FULL.format(os.strerror(e.errno or 0)))
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        return fail(f"{e.strerror or e}{where}")
    if isinstance(e, MemoryError):
        return fail("out of memory; use smaller inputs or batches")
    if isinstance(e, RecursionError):
        return fail("input nested too deeply to process")
    if os.environ.get("BYTEPIECE_DEBUG"):
        raise e
    return fail(f"unexpected {type(e).__name__}: {e} (this is a bug; rerun with BYTEPIECE_DEBUG=1 "
                "for the traceback and report it)")


def default_model_path() -> Path | None:
    from bytepiece_data import DEFAULT_MODEL, data_file

    path = data_file(DEFAULT_MODEL)
    return path if path.is_file() else None


def resolve_model(model: Path | None) -> Path:
    if model is not None:
        return model
    path = default_model_path()
    if path is None:
        raise fail("no model given and no default model is installed; pass -m MODEL")
    return path


