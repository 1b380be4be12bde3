"""Opening files that bytepiece reads (models, sidecars, cache entries, token files, manifests)
without trusting what the path names.

A path may name a FIFO nobody writes to (``open`` blocks forever, and a reader that holds a lock
then blocks every thread), ``/dev/zero`` (endless), a directory, or a huge file given by
mistake. :func:`open_regular` is the one gate every reader goes through: it opens without
blocking, checks with ``fstat`` on the opened descriptor that it is a regular file (so a path
swapped after a check cannot slip through) within a size cap, and only then hands the file out.
Reading (:func:`read_limited`) and memory-mapping (:func:`map_array`, :func:`map_npy`) work on
that same descriptor, never on the path again.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO, Literal

import numpy as np

from ..units import format_size

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NPY_MAGIC = b"\x93NUMPY"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def _check(st: os.stat_result, name: str, what: str, error: type[Exception], limit: int | None,
           private: bool) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {name} is a {_kind(st.st_mode)}, not a regular file; a {what} must be a regular file "
                    "(save it to disk first)")
    if limit is not None and st.st_size > limit:
        raise error(f"{what} {name} is {format_size(st.st_size)}, more than the {format_size(limit)} a {what} can be; "
                    "is it the right file?")
    if private and (st.st_uid != os.geteuid() or st.st_mode & 0o022):
        raise error(f"{what} {name} belongs to another user or others may write to it; only files of this user "
                    "that only this user can write are trusted")


def check_regular(st: os.stat_result, path: str | os.PathLike, *, what: str, error: type[Exception]) -> None:
    """Refuse (``error``) what a ``stat`` of ``path`` says is not a regular file, with the message
    :func:`open_regular` gives; a cheap first look, not a substitute for opening it through
    :func:`open_regular` (the path may change in between)."""
    _check(st, os.fspath(path), what, error, None, False)


def check_file(path: str | os.PathLike, *, what: str, error: type[Exception]) -> None:
    """Before any work: ``path`` names a regular file (through its symbolic links). A missing
    file, a broken link or a link loop, a directory, a FIFO or a device each get their own
    message (never "no such file" for what exists)."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        broken = os.path.islink(name)
        raise error(f"{what} {name} {'is a symbolic link to a missing file' if broken else 'does not exist'}") from None
    except OSError as e:
        reason = "symbolic link loop" if e.errno == errno.ELOOP else e.strerror
        raise error(f"cannot read {what} {name}: {reason}") from None
    check_regular(st, name, what=what, error=error)


def open_regular(path: str | os.PathLike, *, what: str, error: type[Exception], limit: int | None = None,
                 private: bool = False, follow_symlinks: bool = True) -> tuple[IO[bytes], os.stat_result]:
    """``path`` opened for reading, and its ``fstat``, if it is a regular file of at most
    ``limit`` bytes (and, when ``private``, owned by this user and writable by no one else);
    otherwise ``error`` with a message that says what ``what`` must be. The caller closes the
    file. Nothing else is ever opened: a device is refused from its ``stat`` before ``open``
    (opening some devices has effects), and the final check is on the opened descriptor
    (``O_NONBLOCK``: opening a FIFO without a writer returns at once)."""
    name = os.fspath(path)
    nofollow = 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)
    try:
        _check(os.stat(name, follow_symlinks=follow_symlinks), name, what, error, limit, private)
        fd = os.open(name, _FLAGS | nofollow)
    except FileNotFoundError:
        raise error(f"{what} {name} does not exist") from None
    except OSError as e:
        raise error(f"cannot read {what} {name}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        _check(st, name, what, error, limit, private)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | os.PathLike, *, limit: int, what: str, error: type[Exception]) -> bytes:
    """All bytes of the regular file ``path`` (at most ``limit``: a file that grows past it
    while being read is refused too)."""
    f, st = open_regular(path, what=what, error=error, limit=limit)
    with f:
        try:
            data = f.read(st.st_size + 1)  # not read(limit + 1): that allocates the whole limit
            if len(data) > st.st_size:  # it grew since fstat
                data += f.read(limit + 1 - len(data))
        except OSError as e:
            raise error(f"cannot read {what} {os.fspath(path)}: {e.strerror}") from None
    if len(data) > limit:
        raise error(f"{what} {os.fspath(path)} is larger than the {format_size(limit)} a {what} can be; "
                    "is it the right file?")
    return data


def map_array(f: IO[bytes], dtype: np.dtype | str, *, offset: int = 0, count: int | None = None,
              mode: Literal["r", "c"] = "r") -> np.ndarray:
    """A 1-d memory map of ``count`` items (default: to the end) of the file ``f`` opened by
    :func:`open_regular`, from byte ``offset``; an empty array when there is nothing to map
    (``mmap`` refuses empty ranges). ``mode`` is ``"r"`` (read-only) or ``"c"`` (copy on write)."""
    dtype = np.dtype(dtype)
    if count is None:
        count = max(0, os.fstat(f.fileno()).st_size - offset) // dtype.itemsize
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(f, dtype=dtype, mode=mode, offset=offset, shape=(count,))


def map_npy(path: str | os.PathLike, *, what: str, error: type[Exception], mode: Literal["r", "c"] = "r",
            limit: int | None = None, private: bool = False) -> np.ndarray:
    """The 1-d array of a ``.npy`` file, memory-mapped (like ``np.load(mmap_mode=...)`` but on
    the checked descriptor, and refusing object arrays, other shapes and files whose size does
    not match their header)."""
    name = os.fspath(path)
    f, st = open_regular(path, what=what, error=error, limit=limit, private=private)
    with f:
        try:
            if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                raise ValueError("no .npy magic")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f, max_header_size=1 << 16)
        except (ValueError, OSError, SyntaxError, TypeError) as e:
            raise error(f"{what} {name} is not a NumPy .npy file ({e})") from None
        if len(shape) != 1 or dtype.hasobject or dtype.itemsize == 0 or (fortran and len(shape) > 1):
            raise error(f"{what} {name} must hold a 1-d array of numbers, got shape {shape} of {dtype}")
        offset = f.tell()
        if st.st_size != offset + shape[0] * dtype.itemsize:
            raise error(f"{what} {name} has {st.st_size} bytes but its header says {offset + shape[0] * dtype.itemsize}; "
                        "the file is truncated or damaged")
        return map_array(f, dtype, offset=offset, count=shape[0], mode=mode)
