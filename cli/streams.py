"""Standard streams as the shell may hand them over: closed (``<&-``, ``>&-``), unbuffered
(``python -u``), or a standard output on a full disk."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any


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


def stand_in_for_closed_streams() -> None:
    if sys.stdin is None:
        sys.stdin = _ClosedStream(STDIN_CLOSED)
    if sys.stdout is None:
        sys.stdout = _ClosedStream(STDOUT_CLOSED)


def stdout_is_closed() -> bool:
    return sys.stdout is None or isinstance(sys.stdout, _ClosedStream)


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


def stdout_is_full(e: OSError) -> bool:
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


def silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def stdin_is_interactive() -> bool:
    from bytepiece.progress import is_terminal

    return is_terminal(sys.stdin)
