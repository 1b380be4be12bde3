"""A full disk while writing an output, reported as what it is: which output, and what became of it.

The operating system says only "No space left on device"; a user with several outputs, or a
pipeline redirecting standard output, cannot tell which one it was, nor whether an earlier good
file was lost. :class:`NoSpaceError` names the output. Atomic outputs
(:mod:`bytepiece.io.atomic`) raise it from the file they hand out (:func:`output_file`), so the
error names the right file wherever the write happens, and from their commit.
"""

from __future__ import annotations

import concurrent.futures
import errno
import io
import os
import threading
from pathlib import Path
from typing import TypeGuard

from ..errors import InputError

#: what a full file system (``ENOSPC``) or an exhausted quota (``EDQUOT``) raise
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

_STANDARD = {"/dev/stdout": "standard output", "/dev/stderr": "standard error", "/dev/fd/1": "standard output",
             "/dev/fd/2": "standard error", "/proc/self/fd/1": "standard output", "/proc/self/fd/2": "standard error"}


class NoSpaceError(OSError, InputError):
    """No space left (or no quota) for an output; the message names it and says what became of
    any previous file. Still an ``OSError`` with ``errno`` ``ENOSPC``/``EDQUOT``, so code that
    handles full disks itself (sharded encoding, which names its own directory) keeps doing so."""

    def __str__(self) -> str:
        return str(self.strerror)


def shown_name(path: str | os.PathLike) -> str:
    """How messages name an output: ``standard output`` for ``/dev/stdout`` and its aliases."""
    text = os.fspath(path)
    return _STANDARD.get(os.path.abspath(text), text)


def no_space_error(error: OSError, output: str | os.PathLike, *, stream: bool) -> NoSpaceError:
    """The :class:`NoSpaceError` for ``error`` (a full disk) while writing ``output``: a file
    replaced atomically (nothing of it was written, the previous file is untouched) or, with
    ``stream``, a device, FIFO or standard output written directly (what went out before stays)."""
    code = error.errno if error.errno in NO_SPACE else errno.ENOSPC
    name = shown_name(output)
    if stream:
        what = "the output is incomplete (what was written before stays); free some space or write elsewhere"
    else:
        what = f"nothing was written and any previous {name} is untouched; free some space or write it elsewhere"
    message = f"cannot write {name}: {os.strerror(code)}; {what}"
    return NoSpaceError(code, message)


def is_no_space(error: BaseException | None) -> TypeGuard[OSError]:
    """A full disk or quota that no :class:`NoSpaceError` reports yet."""
    return isinstance(error, OSError) and not isinstance(error, NoSpaceError) and error.errno in NO_SPACE


def is_short_write(error: BaseException | None) -> TypeGuard[OSError]:
    """numpy's ``tofile`` (``np.save`` into a file) reports a write that stopped short as a
    plain ``OSError("N requested and M written")``, without an error number."""
    return type(error) is OSError and error.errno is None


def device_full(path: str | os.PathLike) -> bool:
    """Whether the file system holding ``path`` has no free block left for this user (how a
    short write that reports no error number, :func:`is_short_write`, is known to be a full disk)."""
    try:
        vfs = os.statvfs(path)
    except OSError:
        return False
    return (vfs.f_bfree if os.geteuid() == 0 else vfs.f_bavail) == 0


#: a replaced file is synced in the background after every this many bytes written
WRITE_BEHIND_BYTES = 16 << 20

_sync_pool: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None  # (pid, pool)
_sync_pool_lock = threading.Lock()
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _syncer() -> concurrent.futures.ThreadPoolExecutor:
    """The one background thread of this process (a pool inherited through ``fork`` has no
    thread in the child and would never run a job: a child makes its own)."""
    global _sync_pool
    with _sync_pool_lock:
        if _sync_pool is None or _sync_pool[0] != os.getpid():
            _sync_pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bytepiece-sync"))
        return _sync_pool[1]


class _GuardedFile(io.FileIO):
    """The raw file under an output's buffer: a full disk, found whenever the buffer is written
    out (in the caller's ``write``, a ``flush`` or the commit), is a :class:`NoSpaceError` naming
    the output.

    A file that will be replaced atomically (not a ``stream``) is also synced as it grows: after
    every :data:`WRITE_BEHIND_BYTES` an ``fdatasync`` runs on a background thread, so the fsync
    of the commit finds little left to write. Without it a 116 MB token file spent 0.19 s in that
    fsync, a tenth of encoding it; the page cache holds dirty data for 30 s before the kernel
    writes it on its own. A failure of a background sync is raised by the next write or by
    ``close`` (the commit's fsync would not see it again: the kernel reports it once)."""

    def __init__(self, file: int | str | os.PathLike, output: str | os.PathLike, *, stream: bool) -> None:
        self._output = output
        self._stream = stream
        self._unsynced = 0
        self._sync: concurrent.futures.Future | None = None  # set first: close() may run if opening fails
        super().__init__(file, "wb")

    def write(self, data) -> int | None:  # type: ignore[override]
        try:
            self._synced(wait=False)
            n = super().write(data)
        except OSError as e:
            if is_no_space(e):
                raise no_space_error(e, self._output, stream=self._stream) from e
            raise
        if n and not self._stream:
            self._unsynced += n
            if self._unsynced >= WRITE_BEHIND_BYTES and self._sync is None:
                self._sync = _syncer().submit(_datasync, self.fileno())
                self._unsynced = 0
        return n

    def _synced(self, *, wait: bool) -> None:
        """Collect the background sync when it is done (or, with ``wait``, when it ends):
        raises its error."""
        job = self._sync
        if job is not None and (wait or job.done()):
            self._sync = None
            job.result()

    def close(self) -> None:
        try:
            self._synced(wait=True)
        except OSError as e:
            super().close()
            if is_no_space(e):
                raise no_space_error(e, self._output, stream=self._stream) from e
            raise
        super().close()


def output_file(file: int | Path, output: str | os.PathLike, *, stream: bool) -> io.BufferedWriter:
    """A buffered binary file writing to ``file`` (a descriptor, which it then owns, or a path
    opened as ``open(path, "wb")`` would) that reports a full disk as a :class:`NoSpaceError`
    naming ``output``."""
    return io.BufferedWriter(_GuardedFile(file, output, stream=stream))
