"""Shared CLI plumbing: consoles, one-line errors, model resolution, option parsers."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

#: click's exception classes as typer ships them: recent typer releases vendor click (and the
#: click package may not be installed at all), older ones use it; ``typer.BadParameter`` derives
#: from the right ones in both.
ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _LazyConsole:
    """A rich ``Console`` made on first use. Importing rich costs about as much as everything
    else ``echo text | bytepiece encode`` does, and that path prints through ``sys.stdout``."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __enter__(self) -> Any:  # rich's Live renders inside ``with console:``
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._real().__exit__(*exc)

    def _real(self) -> Any:
        console = self._console
        if console is None:
            from rich.console import Console

            console = self._console = Console(**self._options)
        return console


err_console: Any = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line in logs
out_console: Any = _LazyConsole(highlight=False, soft_wrap=True)


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


#: library parameter names as the command line spells them (messages from the library name
#: the parameter; a user of the command line knows the option)
CLI_WORDS = {
    "max_vocab_size": "--vocab-size", "max_memory": "--max-memory", "min_count": "--min-count",
    "max_piece_length": "--max-piece-length", "tmp_dir": "--tmp-dir", "shard_size": "--shard-size",
    "jsonl_field": "--jsonl-field", "parquet_column": "--parquet-column", "num_threads": "--threads",
    "add_bos": "--add-bos", "add_eos": "--add-eos", "allowed_special": "--allow-special",
    "special_tokens": "--special-token", "isolate_digits": "--isolate-digits",
    "heldout_bytes": "--heldout-bytes", "lm_train_bytes": "--lm-train-bytes", "generic_cuts": "--generic-cuts",
    "alpha_train": "--alpha-train", "soft_bias": "--soft-bias", "save_models": "--save-models",
    "transformer_cuts": "--transformer-cuts", "transformer_max_states": "--transformer-max-states",
    "transformer_processes": "--transformer-processes",
}
_CLI_WORD = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, CLI_WORDS)) + r")(?![\w-])")


#: "how a library user does it (CLI: how the command line does it)", as library messages say it
_BOTH_SPELLINGS = re.compile(r"(?<!\S)[^\s()]+ \(CLI: ([^()]+)\)")


def in_cli_words(message: str, subjects: Mapping[str, str] | None = None) -> str:
    """``message`` as the command line says it: where the library gives both spellings
    (``overwrite=True (CLI: --force)``) the CLI's alone, and parameter names as options.

    ``subjects``: a command's own parameters whose names are ordinary words (``order``,
    ``workers``, ``vocab size``), as its options. Such a word is an option only as the subject
    a library message starts with (``order must be ...``); anywhere else ("in corpus order",
    "the workers of the Dask cluster") it is the word, so these cannot be in :data:`CLI_WORDS`."""
    message = _BOTH_SPELLINGS.sub(r"\1", message)
    for name in sorted(subjects or (), key=len, reverse=True):  # "transformer width" before "transformer"
        if message.startswith(f"{name} "):
            message = (subjects or {})[name] + message[len(name):]
            break
    return _CLI_WORD.sub(lambda m: CLI_WORDS[m.group(1)], message)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise. ``message`` is plain
    text: brackets in it (``pip install 'bytepiece-tk[plot]'``) are printed as they are."""
    text = " ".join(in_cli_words(message).split())
    err_console.print(f"[bold red]error:[/] {_escape(text)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


class ClosedStreamError(OSError):
    """A standard stream that the shell closed (``<&-``, ``>&-``) was used."""


class _ClosedStream:
    """Stands in for a standard stream that the shell closed, which Python sets to None: any
    use of it is then a :class:`ClosedStreamError` with ``message`` instead of an
    AttributeError. It is no terminal, and flushing it (as Python does at exit) is harmless."""

    def __init__(self, message: str) -> None:
        self._message = message

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise ClosedStreamError(self._message)


STDIN_CLOSED = "standard input is closed"
STDOUT_CLOSED = "cannot write to standard output: it is closed"


def _stand_in_for_closed_streams() -> None:
    if sys.stdin is None:
        sys.stdin = _ClosedStream(STDIN_CLOSED)
    if sys.stdout is None:
        sys.stdout = _ClosedStream(STDOUT_CLOSED)


def stdout_is_closed() -> bool:
    return sys.stdout is None or isinstance(sys.stdout, _ClosedStream)


def handle_errors(func: F) -> F:
    """Turn every error into a one-line message and exit status 1, never a traceback (set
    ``BYTEPIECE_DEBUG=1`` to see the traceback of an unexpected error). Warnings become one
    ``note:`` line each. In the ``bytepiece`` process, the exit that follows is quiet
    (:func:`quiet_exit`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _stand_in_for_closed_streams()
        completed = False
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                result = func(*args, **kwargs)
            completed = True
            return result
        except typer.Exit as e:
            completed = not e.exit_code
            raise
        except (typer.Abort, ClickException):
            raise
        except BrokenPipeError:
            _silence_stdout()  # the reader went away (| head): no message, no "Exception ignored"
            raise typer.Exit(1) from None
        except (Exception, KeyboardInterrupt) as e:
            raise _failure(e) from None
        finally:
            if _quiet_exit:
                _exit_quietly(completed)

    return wrapper  # type: ignore[return-value]


def _failure(e: BaseException) -> typer.Exit:
    """The one-line error (and exit status) for an exception that ended a command."""
    from bytepiece.engine.interrupts import interrupt_behind
    from bytepiece.errors import BytePieceError

    e = interrupt_behind(e) or e  # a Ctrl-C that landed in a compiled kernel's call
    if _swallowed and not isinstance(e, KeyboardInterrupt):  # an interrupt lost in a C callback, then this
        e = _swallowed[-1]
    if isinstance(e, Terminated):
        return fail("terminated", 143)
    if isinstance(e, KeyboardInterrupt):
        return fail("interrupted", 130)
    if isinstance(e, (ClosedStreamError, BytePieceError, FileExistsError)):
        return fail(str(e))
    if isinstance(e, OSError):
        if _stdout_is_full(e):
            _silence_stdout()  # what is still buffered cannot go out either: no second error at exit
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


def _exit_quietly(completed: bool) -> None:
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


def note(message: str) -> None:
    """One ``note:`` line on stderr (plain text: brackets in ``message`` are not markup)."""
    text = " ".join(in_cli_words(str(message)).split())
    err_console.print(f"[yellow]note:[/] {_escape(text)}", markup=True, highlight=False, soft_wrap=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    note(str(message))


STDOUT_FULL = ("cannot write standard output: {}; the output is incomplete (what was written "
               "before stays); free some space or redirect standard output elsewhere")


def buffered_stdout() -> None:
    """Under ``PYTHONUNBUFFERED=1`` (or ``python -u``) ``sys.stdout`` writes straight to the raw
    file, and its text layer drops what a short write (a full disk) left out: the output would
    end early with exit 0. A buffer in between retries short writes and raises the error; line
    buffering keeps the output coming a line at a time, as the user asked."""
    import io

    out = sys.stdout
    raw = getattr(out, "buffer", None)
    if not isinstance(raw, io.RawIOBase):
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors,
                                      line_buffering=True)


def _stdout_is_full(e: OSError) -> bool:
    """Whether a full disk that names no file (files bytepiece writes are named in their own
    errors) is standard output's: writing out what it still holds fails the same way, or it is
    a character device (``/dev/full``) or a file on a file system with no free block."""
    import errno
    import stat

    if e.errno not in (errno.ENOSPC, errno.EDQUOT) or e.filename is not None or stdout_is_closed():
        return False
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISCHR(mode):
            return not os.isatty(fd)
        vfs = os.fstatvfs(fd)
        return stat.S_ISREG(mode) and (vfs.f_bfree if os.geteuid() == 0 else vfs.f_bavail) == 0
    except OSError as again:  # io.UnsupportedOperation too: a stand-in without a descriptor
        return again.errno in (errno.ENOSPC, errno.EDQUOT)
    except (ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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


def stdin_is_interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
