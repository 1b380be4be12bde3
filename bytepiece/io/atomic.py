"""Atomic outputs: single files and sets of files that appear together or not at all.

A model and its ``.meta.json``, the models of several vocabulary sizes, a ``.bin`` with its
``.idx`` and ``.json``: readers must never pair an old member with a new one, and an error,
Ctrl-C or SIGKILL at any moment must leave either the complete old set or the complete new one.

How (see :class:`OutputSet`): every member is written to a hidden temporary beside its target
(``.NAME.bp<pid>-<hex>.tmp``, created like ``open(path, "w")`` would, so the umask applies),
flushed and fsynced. A set of one file is then published by ``os.replace``. A larger set
first gets a journal (:mod:`bytepiece.io.journal`): after it exists the commit rolls forward,
whoever finishes it, and it is removed once every rename is done. Before its first file in a
directory, a writer completes the journals pending there that this user's bytepiece provably
wrote (:func:`cleanup`, :mod:`bytepiece.io.recovery`; anything else is left alone) and deletes
temporaries whose writer is dead (the pid in the name no longer runs and nobody holds the
temporary's lock), so leftovers of a killed run go away and, being hidden ``*.tmp`` files, are
never taken for output meanwhile. Reading never changes anything on disk.

A full disk (or quota) is a :class:`~bytepiece.io.nospace.NoSpaceError` (an ``InputError``)
that names the output and says that any previous file is untouched, wherever it happens: in a
write to a file the set handed out, in its commit, or in a writer's last parts.

What is replaced: only regular files. A symlink is followed (its target is replaced, the link
stays); a character device or FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written to
directly, as a shell redirection would; a directory, socket or block device is refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar, Union

from ..errors import InputError
from . import journal as J
from . import recovery
from .nospace import NoSpaceError, device_full, is_no_space, is_short_write, no_space_error, output_file

StrPath = Union[str, "os.PathLike[str]"]

__all__ = ["NoSpaceError", "OutputSet", "atomic_open", "atomic_write", "check_writable", "cleanup", "default_mode",
           "is_stream", "make_temp", "recover", "resolve"]

recover = recovery.recover
cleanup = recovery.cleanup


def resolve(path: StrPath) -> Path:
    """Where writing ``path`` lands: every symlink followed (the link itself stays)."""
    return Path(os.path.realpath(os.fspath(path)))


def default_mode() -> int:
    """0666 minus the process umask, read without ``os.umask`` (which sets the mask for the
    whole process and would race with other threads creating files)."""
    return 0o666 & ~J.current_umask()


def make_temp(path: StrPath) -> tuple[int, Path]:
    """A new, locked, hidden temporary beside ``path`` (descriptor, name); a killed writer's
    temporary is recognised by its name and removed by later writes into the directory."""
    return J.create_temp(Path(path))


def _stat(target: Path, shown: StrPath) -> os.stat_result | None:
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InputError(f"cannot write {shown}: a component of the path is a file, not a directory") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISSOCK, "socket"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "FIFO")):
        if test(mode):
            return name
    return "special file"


def _names_descriptor(path: StrPath) -> bool:
    """``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``...: an open descriptor of this process,
    whatever it points to (replacing the file behind it would detach the descriptor from it)."""
    text = os.path.abspath(os.fspath(path))
    return text in ("/dev/stdout", "/dev/stderr") or text.startswith(("/dev/fd/", "/proc/self/fd/"))


def is_stream(path: StrPath) -> bool:
    """True when writing ``path`` streams into an existing device, FIFO or open descriptor
    instead of creating or replacing a file (so no temporary, no sidecar beside it, no atomicity)."""
    if _names_descriptor(path) and os.path.exists(path):
        return True
    st = _stat(resolve(path), path)
    return st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode))


def check_writable(paths: Iterable[StrPath], *, overwrite: bool) -> None:
    """Raise before any work is done if one of ``paths`` cannot be written: a missing or
    unwritable directory (a temporary is really created and removed there), a directory where a
    file is expected, a socket or block device, an existing file without ``overwrite``
    (``FileExistsError``). Devices and FIFOs only need to be writable."""
    probed: set[Path] = set()
    for path in paths:
        if is_stream(path):
            if not os.access(path, os.W_OK):
                raise InputError(f"cannot write to {path}: permission denied")
            continue
        target = resolve(path)
        st = _stat(target, path)
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"output {path} is a {_kind(st.st_mode)}; give the name of a file to write")
            if not overwrite:
                raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --force) to replace it")
        parent = target.parent
        if parent in probed:
            continue
        if not parent.is_dir():
            raise InputError(f"cannot write {path}: directory {parent} does not exist; create it first")
        try:
            fd, probe = J.create_temp(target)
            os.close(fd)
            probe.unlink()
        except OSError as e:
            raise InputError(f"cannot write {path}: directory {parent} is not writable ({e.strerror})") from None
        probed.add(parent)


@dataclass
class _Member:
    target: Path
    kind: str  # "replace" (temporary, renamed on commit), "stream" (written directly) or "remove"
    overwrite: bool
    shown: str
    tmp: Path | None = None
    lock_fd: int = -1  # holds the temporary's lock until the set is committed or aborted
    file: IO | None = None


class OutputSet:
    """Files that are committed together: :meth:`open` / :meth:`write` / :meth:`remove` stage
    members, :meth:`commit` publishes all of them (journalled when there are several), and
    :meth:`abort` (or an exception inside ``with``) discards them, leaving the old files.

    >>> with OutputSet(overwrite=True) as out:                         # doctest: +SKIP
    ...     out.write("m.model", model_json)
    ...     out.write("m.model.meta.json", meta_json)
    """

    def __init__(self, *, overwrite: bool = True) -> None:
        self.overwrite = overwrite
        self._members: list[_Member] = []
        self._cleaned: set[Path] = set()
        self._state = "open"

    # -- staging ----------------------------------------------------------------------------
    def _stage(self, path: StrPath, overwrite: bool | None, removing: bool = False) -> _Member:
        if self._state != "open":
            raise InputError(f"this output set is already {self._state}")
        stream = not removing and is_stream(path)
        if stream:
            target = Path(path)  # opened as named: a descriptor path reopens that descriptor
        elif removing:
            target = resolve(Path(path).parent) / Path(path).name  # a symlink is removed, not its target
        else:
            target = resolve(path)
        if any(m.target == target for m in self._members):
            raise InputError(f"{path} is staged twice in one output set")
        if not stream and target.parent not in self._cleaned:
            cleanup(target.parent)  # finish a killed run's commit first, drop its temporaries
            self._cleaned.add(target.parent)
        overwrite = self.overwrite if overwrite is None else overwrite
        member = _Member(target, "remove" if removing else "stream" if stream else "replace", overwrite,
                         os.fspath(path))
        st = None if stream else _stat(target, path)
        if removing:
            st = os.lstat(target) if os.path.lexists(target) else None
            if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise InputError(f"{path} is a {_kind(st.st_mode)}, not a file that can be removed")
        elif st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"output {path} is a {_kind(st.st_mode)}; give the name of a file to write")
            elif not overwrite:
                raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --force) to replace it")
        elif not target.parent.is_dir():
            raise InputError(f"cannot write {path}: directory {target.parent} does not exist; create it first")
        self._members.append(member)
        return member

    def open(self, path: StrPath, mode: str = "wb", *, overwrite: bool | None = None) -> IO:
        """A file to write ``path``'s new content into (``"w"``: UTF-8 text with ``\\n``; ``"wb"``).
        ``overwrite`` overrides the set's setting for this member."""
        if mode not in ("w", "wb"):
            raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
        member = self._stage(path, overwrite)
        stream = member.kind == "stream"
        try:
            if stream:
                raw: IO = output_file(member.target, member.shown, stream=True)
            else:
                member.lock_fd, member.tmp = J.create_temp(member.target)
                with contextlib.suppress(OSError):  # keep the mode of the file being replaced
                    os.fchmod(member.lock_fd, stat.S_IMODE(os.stat(member.target).st_mode))
                raw = output_file(os.dup(member.lock_fd), member.shown, stream=False)
                J.step("temp")
        except BaseException as e:
            self._members.remove(member)
            self._discard(member)
            if is_no_space(e):
                raise no_space_error(e, member.shown, stream=stream) from e
            raise
        member.file = io.TextIOWrapper(raw, encoding="utf-8", newline="\n") if mode == "w" else raw
        return member.file

    def adopt(self, path: StrPath, finished: StrPath, *, overwrite: bool | None = None) -> Path:
        """Stage the finished file ``finished`` (on the same file system, e.g. written in a
        staging directory beside ``path``) as the new content of ``path``: it is moved to a
        temporary beside ``path`` now and published with the rest of the set."""
        member = self._stage(path, overwrite)
        if member.kind == "stream":
            self._members.remove(member)
            raise InputError(f"{path} is a device or FIFO; a staged file can only replace a regular file")
        try:
            member.lock_fd, member.tmp = J.create_temp(member.target)
            os.replace(finished, member.tmp)
            J.step("temp")
        except BaseException:
            self._members.remove(member)
            self._discard(member)
            raise
        return Path(path)

    def write(self, path: StrPath, data: bytes | str, *, overwrite: bool | None = None) -> Path:
        """Stage ``data`` (text as UTF-8) as the new content of ``path``."""
        with self.open(path, "wb", overwrite=overwrite) as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        J.step("written")
        return Path(path)

    def remove(self, path: StrPath) -> None:
        """Delete ``path`` (if it exists) as part of the commit, e.g. a sidecar the new set lacks."""
        self._stage(path, True, removing=True)

    # -- finishing --------------------------------------------------------------------------
    def commit(self) -> list[Path]:
        """Publish every staged member; returns the paths as given."""
        if self._state != "open":
            raise InputError(f"this output set is already {self._state}")
        self._state = "committing"
        try:
            for m in self._members:
                self._flush(m)
            ops = [m for m in self._members if m.kind != "stream"]
            for m in ops:
                if m.kind == "replace" and not m.overwrite and os.path.lexists(m.target):
                    raise FileExistsError(f"{m.shown} appeared while it was being written; nothing was replaced")
            pending = [(m.kind, m.tmp, m.target) for m in ops]
            J.step("synced")
            journal = J.write_journal(pending) if len(pending) > 1 else None
        except BaseException as e:
            found = self.no_space_error(e)
            self.abort()
            if found is not None:
                raise found from e
            raise
        try:
            J.apply(pending)  # past the commit point: an interruption here is rolled forward later
            if journal is not None:
                J.finish(journal)
        finally:
            for m in self._members:
                self._discard(m, keep_tmp=True)
            self._state = "committed"
        return [Path(m.shown) for m in self._members if m.kind != "remove"]

    @staticmethod
    def _flush(m: _Member) -> None:
        """Everything written to ``m`` on disk (fsynced) and its file closed."""
        try:
            if m.file is not None and not m.file.closed:
                m.file.flush()
            if m.kind == "replace":
                os.fsync(m.lock_fd)
            if m.file is not None:
                m.file.close()
        except OSError as e:
            if is_no_space(e):
                raise no_space_error(e, m.shown, stream=m.kind == "stream") from e
            raise

    def no_space_error(self, error: BaseException) -> NoSpaceError | None:
        """``error`` as a :class:`NoSpaceError` naming the member it is about, when it is a full
        disk that no member has reported yet (raw ``ENOSPC``/``EDQUOT`` from a write the set did
        not see, or a short write without an error number, numpy's, into a full file system);
        otherwise None. The member named is the last staged whose file system is full, else the last."""
        written = [m for m in self._members if m.kind != "remove"]
        if not (is_no_space(error) or is_short_write(error)) or not written:
            return None
        full = [m for m in written if device_full(m.target.parent)]
        if not full and not is_no_space(error):
            return None
        m = (full or written)[-1]
        return no_space_error(error, m.shown, stream=m.kind == "stream")

    def abort(self) -> None:
        """Discard every staged member; the previous files stay as they were."""
        for m in self._members:
            self._discard(m)
        self._state = "aborted"

    @staticmethod
    def _discard(m: _Member, keep_tmp: bool = False) -> None:
        if m.file is not None:
            with contextlib.suppress(OSError, ValueError):
                m.file.close()
        if m.tmp is not None and not keep_tmp:
            with contextlib.suppress(OSError):
                m.tmp.unlink()
        if m.lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(m.lock_fd)
            m.lock_fd = -1

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if self._state == "open":
            if exc_type is None:
                self.commit()
            else:
                found = self.no_space_error(exc)
                self.abort()
                if found is not None:
                    raise found from exc
        return False

    def __del__(self) -> None:  # an abandoned set must not leave temporaries behind
        if getattr(self, "_state", None) == "open":
            self.abort()


_Writer = TypeVar("_Writer", bound="StagedWriter")


class StagedWriter:
    """The life of a writer whose files are staged in an :class:`OutputSet`: ``close()`` writes
    the last parts (``_finish``) and commits every file at once; an error, ``abort()`` or an
    abandoned writer discards them, leaving any previous files as they were. Subclasses set
    ``path``, ``_out`` and ``_closed = False`` once their files are open."""

    path: Path
    _out: OutputSet
    _closed = True

    def _finish(self) -> None:
        """Write what can only be written at the end (headers, indexes, sidecars)."""

    def close(self) -> Path:
        """Finish and commit the files as one set. Returns ``path``."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            self._finish()
            self._out.commit()
        except BaseException as e:
            found = self._out.no_space_error(e)
            self._out.abort()
            if found is not None:
                raise found from e
            raise
        return self.path

    def abort(self) -> None:
        """Discard everything written (temporary files removed; previous output untouched)."""
        self._closed = True
        out = getattr(self, "_out", None)
        if out is not None:
            out.abort()

    def __enter__(self: _Writer) -> _Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is None:
            self.close()
        else:
            out = getattr(self, "_out", None)
            found = out.no_space_error(exc) if out is not None and not self._closed else None
            self.abort()
            if found is not None:
                raise found from exc
        return False

    def __del__(self) -> None:  # an abandoned writer must not leave temporaries behind
        if not getattr(self, "_closed", True):
            self.abort()


@contextlib.contextmanager
def atomic_open(path: StrPath, mode: str = "w", *, overwrite: bool = True) -> Iterator[IO]:
    """``open`` for writing (``"w"``: UTF-8 text with ``\\n`` line ends; ``"wb"``) whose file
    appears at ``path`` only when the block finishes without an exception."""
    with OutputSet(overwrite=overwrite) as out:
        yield out.open(path, mode)


def atomic_write(path: StrPath, data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with OutputSet(overwrite=overwrite) as out:
        out.write(path, data)
    return Path(path)

