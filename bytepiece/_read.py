"""Reading small input files (models, sidecars) without trusting what the path names.

A model path may be ``/dev/zero`` (endless), a FIFO nobody writes to (``open`` blocks forever),
or a huge file given by mistake; none of these should hang the process or exhaust its memory.
Regular files are checked against a size cap before anything is read; FIFOs and pipes (``-m
<(curl ...)`` or ``/dev/stdin``) are read with a cap and an idle timeout; devices, sockets and
directories are refused.
"""

from __future__ import annotations

import os
import select
import stat

#: Seconds to wait for the next bytes from a FIFO or pipe before giving up.
FIFO_TIMEOUT = 30.0
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def read_limited(path: str | os.PathLike, *, limit: int, what: str, error: type[Exception]) -> bytes:
    """The bytes of ``path`` (a regular file, FIFO or pipe), at most ``limit`` of them; anything
    else raises ``error`` with a message that names ``what`` the file was supposed to be."""
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)  # non-blocking: opening a FIFO without a writer returns at once
    except FileNotFoundError:
        raise error(f"{what} {name} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} path {name} is a directory, not a file") from None
    except OSError as e:
        raise error(f"cannot read {what} {name}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_size > limit:
                raise error(f"{what} {name} is {_mib(st.st_size)}, more than the {_mib(limit)} a {what} can be; "
                            f"is it the right file?")
            os.set_blocking(fd, True)
            return _read_all(fd, limit, name, what, error, timeout=None)
        if stat.S_ISFIFO(st.st_mode):
            return _read_all(fd, limit, name, what, error, timeout=FIFO_TIMEOUT)
        raise error(f"{what} path {name} is a {_kind(st.st_mode)}, not a {what}")
    except OSError as e:
        raise error(f"cannot read {what} {name}: {e.strerror}") from None
    finally:
        os.close(fd)


def _read_all(fd: int, limit: int, name: str, what: str, error: type[Exception], timeout: float | None) -> bytes:
    parts: list[bytes] = []
    size = 0
    poller = None
    if timeout is not None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
    while True:
        if poller is not None and timeout is not None and not poller.poll(timeout * 1000):
            raise error(f"no data arrived from {what} {name} for {timeout:g} s (a FIFO nobody writes to?)")
        try:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
        except BlockingIOError:  # woken without data (a writer came and went): wait again
            continue
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise error(f"{what} {name} is larger than the {_mib(limit)} a {what} can be; is it the right file?")
