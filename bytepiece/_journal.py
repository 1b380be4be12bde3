"""Temporaries, commit journals and their recovery, for :mod:`bytepiece.atomic`.

Names in a directory:

``.NAME.bp<pid>-<8 hex>.tmp``
    a temporary being written for ``NAME``; its writer holds an ``flock`` on it until the set
    is committed or aborted. Stale when the pid no longer runs *and* the lock is free (both, so
    neither pid reuse nor another pid namespace on a shared volume can get a live file deleted).
``.NAME.bytepiece-commit``
    a commit marker beside each member ``NAME`` of a multi-file commit: the *primary* (beside the
    first member) holds the journal, the operations ``replace TMP -> TARGET`` / ``remove TARGET``
    with paths relative to the marker; the others are *pointers* to the primary. Pointers are
    written first, the primary last: the primary's appearance is the commit point. A pointer
    whose primary is missing belongs to a commit that never reached it and is deleted.

Recovery (``recover``, ``cleanup``) performs the remaining operations, which are idempotent
(a temporary already renamed is skipped), then removes the pointers and the primary. Only
markers owned by this user (or root) are acted upon: a journal renames and deletes files, so
one planted by another user in a shared directory is refused, not followed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

MARKER_SUFFIX = ".bytepiece-commit"
FORMAT = "bytepiece-commit"
_TEMP = re.compile(r"\.(?P<name>.*)\.bp(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp", re.DOTALL)
_NAME_BYTES = 100  # room for the decorations within the usual 255-byte name limit
_MAX_MARKER_BYTES = 1 << 20

#: Fault-injection hook for tests: called with the name of each step of a commit.
fault_hook: Callable[[str], None] | None = None

Op = tuple[str, "Path | None", Path]  # ("replace", tmp, target) or ("remove", None, target)


def step(name: str) -> None:
    if fault_hook is not None:
        fault_hook(name)


def _short(name: str) -> str:
    raw = os.fsencode(name)
    if len(raw) <= _NAME_BYTES:
        return name
    return os.fsdecode(raw[: _NAME_BYTES - 13]) + "~" + hashlib.sha256(raw).hexdigest()[:12]


def current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere: the permissions the kernel gives a file created asking for 0777.
    fd, name = create_temp(Path(tempfile.gettempdir()) / "umask", mode=0o777)
    try:
        return 0o777 & ~os.fstat(fd).st_mode
    finally:
        os.close(fd)
        os.unlink(name)


def create_temp(target: Path, mode: int = 0o666) -> tuple[int, Path]:
    """A new temporary beside ``target``, exclusively created and locked (descriptor, path)."""
    stem = f".{_short(target.name)}.bp{os.getpid()}-"
    for _ in range(100):
        tmp = target.with_name(f"{stem}{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
        except FileExistsError:
            continue
        if fcntl is not None:
            with contextlib.suppress(OSError):  # filesystems without locks: the pid still protects it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "cannot create a unique temporary file", str(target))  # pragma: no cover


def marker_path(target: Path) -> Path:
    return target.with_name(f".{_short(target.name)}{MARKER_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_marker(path: Path, record: dict) -> None:
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(os.dup(fd), "w", encoding="utf-8") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)


def write_journal(ops: Sequence[Op]) -> Path:
    """Write the markers of a multi-file commit; returns the primary (the commit point)."""
    commit_id = secrets.token_hex(8)
    markers = [marker_path(target) for _, _, target in ops]
    primary, pointers = markers[0], markers[1:]
    base = primary.parent
    record = {
        "format": FORMAT,
        "id": commit_id,
        "ops": [{"op": kind, "target": os.path.relpath(target, base),
                 **({"tmp": os.path.relpath(tmp, base)} if tmp is not None else {})} for kind, tmp, target in ops],
        "markers": [os.path.relpath(p, base) for p in pointers],
    }
    written: list[Path] = []
    try:
        for pointer in pointers:
            _write_marker(pointer, {"format": FORMAT, "id": commit_id,
                                    "primary": os.path.relpath(primary, pointer.parent)})
            written.append(pointer)
            step("pointer")
        for directory in {p.parent for p in pointers}:
            _fsync_dir(directory)
        _write_marker(primary, record)  # the commit point
    except BaseException:
        for pointer in written:  # not committed: the pointers go with the temporaries
            with contextlib.suppress(OSError):
                pointer.unlink()
        raise
    _fsync_dir(base)
    step("journal")
    return primary


def apply(ops: Sequence[Op]) -> None:
    """Perform the operations of a commit (each one skipped if already done)."""
    for kind, tmp, target in ops:
        try:
            if kind == "replace":
                os.replace(tmp, target)  # type: ignore[arg-type]
            else:
                os.unlink(target)
        except FileNotFoundError:
            pass
        step(kind)
    for directory in {target.parent for _, _, target in ops}:
        _fsync_dir(directory)


def finish(primary: Path) -> None:
    """Remove a completed commit's markers: pointers first, the primary last."""
    record = _read_marker(primary)
    if record is None:
        return
    for rel in record.get("markers", []):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(primary.parent / rel)
        step("unmark")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(primary)


def _untrusted(path: Path, why: str) -> InputError:
    return InputError(f"{path} is {why}; bytepiece will not act on it. If no bytepiece process is writing "
                      f"there, delete it (an interrupted write then stays as it is)")


def _read_marker(path: Path) -> dict | None:
    """The marker's record, or None if it vanished (another process finished the commit)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _untrusted(path, f"not a readable commit record ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if hasattr(os, "geteuid") and st.st_uid not in (os.geteuid(), 0):
            raise _untrusted(path, f"a commit record of another user (uid {st.st_uid})")
        if not (st.st_mode & 0o170000 == 0o100000) or st.st_size > _MAX_MARKER_BYTES:
            raise _untrusted(path, "not a bytepiece commit record")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    finally:
        os.close(fd)
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        raise _untrusted(path, "not a valid commit record (not JSON)") from None
    if not (isinstance(record, dict) and record.get("format") == FORMAT and isinstance(record.get("id"), str)):
        raise _untrusted(path, "not a bytepiece commit record")
    return record


def _journal_ops(primary: Path, record: dict) -> list[Op]:
    """Validated operations of a journal: each temporary is one of ours for its own target,
    in the target's directory, and every target has its marker listed in the journal."""
    base = primary.parent
    raw_ops, raw_markers = record.get("ops"), record.get("markers")
    if not (isinstance(raw_ops, list) and isinstance(raw_markers, list)
            and all(isinstance(m, str) for m in raw_markers)):
        raise _untrusted(primary, "a malformed commit journal")
    markers = {os.path.normpath(base / m) for m in raw_markers} | {os.path.normpath(primary)}
    ops: list[Op] = []
    for op in raw_ops:
        if not (isinstance(op, dict) and op.get("op") in ("replace", "remove") and isinstance(op.get("target"), str)):
            raise _untrusted(primary, "a malformed commit journal")
        target = Path(os.path.normpath(base / op["target"]))
        tmp = None
        if op["op"] == "replace":
            tmp = Path(os.path.normpath(base / str(op.get("tmp", ""))))
            m = _TEMP.fullmatch(tmp.name)
            if tmp.parent != target.parent or m is None or m.group("name") != _short(target.name):
                raise _untrusted(primary, "a commit journal with a foreign temporary")
        if os.path.normpath(marker_path(target)) not in markers:
            raise _untrusted(primary, "a commit journal naming a file without its marker")
        ops.append((op["op"], tmp, target))
    return ops


def _roll_forward(primary: Path, record: dict) -> None:
    if "primary" in record:
        raise _untrusted(primary, "a commit pointer where a journal was expected")
    apply(_journal_ops(primary, record))
    finish(primary)


def _recover_marker(marker: Path) -> None:
    record = _read_marker(marker)
    if record is None:
        return
    if "primary" not in record:
        _roll_forward(marker, record)
        return
    if not isinstance(record["primary"], str):
        raise _untrusted(marker, "a malformed commit pointer")
    primary = Path(os.path.normpath(marker.parent / record["primary"]))
    if primary.name.endswith(MARKER_SUFFIX):
        journal = _read_marker(primary)
        if journal is not None and journal.get("id") == record["id"]:
            _roll_forward(primary, journal)
            return
    # The commit never reached its journal (the writer died before its commit point): stale.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)


def recover(path: str | os.PathLike) -> None:
    """Complete an interrupted commit that involves ``path`` (one ``lstat`` when there is none)."""
    target = Path(os.path.realpath(os.fspath(path)))
    marker = marker_path(target)
    if os.path.lexists(marker):
        _recover_marker(marker)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _unlocked(path: Path) -> bool:
    if fcntl is None:  # pragma: no cover - not POSIX
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def cleanup(directory: str | os.PathLike) -> list[Path]:
    """Complete the interrupted commits in ``directory`` and delete the temporaries of writers
    that are gone; returns the temporaries deleted. Called before every write into a directory."""
    if os.name != "posix":  # pragma: no cover - pid and lock checks are POSIX
        return []
    directory = Path(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if name.startswith(".") and name.endswith(MARKER_SUFFIX):
            _recover_marker(directory / name)
    removed = []
    for name in names:
        m = _TEMP.fullmatch(name)
        if m is None or _alive(int(m.group("pid"))):
            continue
        path = directory / name
        if _unlocked(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
