"""Temporaries and commit journals for :mod:`bytepiece.io.atomic` (the writer's side; reading
journals back and finishing interrupted commits is :mod:`bytepiece.io.recovery`).

Names in a directory:

``.NAME.bp<pid>-<8 hex>.tmp``
    a temporary being written for ``NAME``; its writer holds an ``flock`` on it until the set
    is committed or aborted. Stale when the pid no longer runs *and* the lock is free (both, so
    neither pid reuse nor another pid namespace on a shared volume can get a live file deleted).
``.NAME.bytepiece-commit``
    a commit marker beside each member ``NAME`` of a multi-file commit: the *primary* (beside the
    first member) holds the journal, the operations ``replace TMP -> TARGET`` / ``remove TARGET``,
    each with the absolute directory it happens in and plain file names; the others are
    *pointers* to the primary. Pointers are written first, the primary last: the primary's
    appearance is the commit point.

Every marker names its own directory and file name, the commit id and the writer's pid, and
carries an HMAC of all of it under this user's key (:mod:`bytepiece.io.secret`): a later
process acts on a marker only if it proves to be one this user's bytepiece wrote at that very
place. Each operation also records the identity (inode, and for removals size and mtime) of
the file it applies to, so a replayed or stale journal cannot touch a file created since.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from . import secret

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

MARKER_SUFFIX = ".bytepiece-commit"
FORMAT = "bytepiece-commit"
VERSION = 2
TEMP = re.compile(r"\.(?P<name>.*)\.bp(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp", re.DOTALL)
_NAME_BYTES = 100  # room for the decorations within the usual 255-byte name limit
MAX_MARKER_BYTES = 64 << 20  # a journal of a corpus of thousands of shards

#: Fault-injection hook for tests: called with the name of each step of a commit.
fault_hook: Callable[[str], None] | None = None

Op = tuple[str, "Path | None", Path]  # ("replace", tmp, target) or ("remove", None, target)


def step(name: str) -> None:
    if fault_hook is not None:
        fault_hook(name)


def short_name(name: str) -> str:
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
    stem = f".{short_name(target.name)}.bp{os.getpid()}-"
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
    return target.with_name(f".{short_name(target.name)}{MARKER_SUFFIX}")


def fsync_dir(directory: Path) -> None:
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


class Journal(NamedTuple):
    """A written journal, as its writer knows it (to remove its markers once done)."""

    id: str
    primary: Path
    pointers: list[Path]


def _real_dir(path: Path) -> str:
    return os.path.realpath(os.fspath(path.parent))


#: what a journal's MAC is over, before its fields (no other file's MAC can pass for it)
MAC_CONTEXT = b"bytepiece-commit/2\n"


def _message(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signed(fields: dict) -> dict:
    """``fields`` with their MAC (``None`` without a key: then nobody else will act on it)."""
    tag = secret.mac(MAC_CONTEXT, _message(fields))
    return {**fields, "mac": None if tag is None else tag.hex()}


def verified(record: dict) -> bool:
    """Whether ``record`` carries a valid MAC under this user's key."""
    tag = record.get("mac")
    if not isinstance(tag, str):
        return False
    try:
        return secret.verify(MAC_CONTEXT, _message({k: v for k, v in record.items() if k != "mac"}),
                             bytes.fromhex(tag))
    except (TypeError, ValueError, RecursionError):
        return False


def _identity(path: Path) -> dict:
    """What proves later that ``path`` is still the file this commit decided to act on."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"ino": None}
    return {"ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _op_record(kind: str, tmp: Path | None, target: Path) -> dict:
    record: dict = {"op": kind, "dir": _real_dir(target), "target": target.name}
    if tmp is not None:
        record["tmp"] = tmp.name
        record["ino"] = os.lstat(tmp).st_ino
    else:
        record.update(_identity(target))
    return record


def _header(kind: str, commit_id: str, marker: Path) -> dict:
    return {"format": FORMAT, "version": VERSION, "kind": kind, "id": commit_id, "pid": os.getpid(),
            "dir": _real_dir(marker), "name": marker.name}


def write_journal(ops: Sequence[Op]) -> Journal:
    """Write the markers of a multi-file commit; returns the journal (its primary is the commit point)."""
    commit_id = secrets.token_hex(16)
    markers = [marker_path(target) for _, _, target in ops]
    primary, pointers = markers[0], markers[1:]
    primary_text = os.path.join(_real_dir(primary), primary.name)
    record = signed({**_header("journal", commit_id, primary),
                     "ops": [_op_record(kind, tmp, target) for kind, tmp, target in ops]})
    written: list[Path] = []
    try:
        for pointer in pointers:
            _write_marker(pointer, signed({**_header("pointer", commit_id, pointer), "primary": primary_text}))
            written.append(pointer)
            step("pointer")
        for directory in {p.parent for p in pointers}:
            fsync_dir(directory)
        _write_marker(primary, record)  # the commit point
    except BaseException:
        for pointer in written:  # not committed: the pointers go with the temporaries
            with contextlib.suppress(OSError):
                pointer.unlink()
        raise
    fsync_dir(primary.parent)
    step("journal")
    return Journal(commit_id, primary, pointers)


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
        fsync_dir(directory)


def marker_id(path: Path) -> str | None:
    """The commit id a marker file holds (None if it is gone or not a marker); no trust implied."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_MARKER_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None
    found = record.get("id") if isinstance(record, dict) else None
    return found if isinstance(found, str) else None


def unlink_marker(path: Path, commit_id: str) -> None:
    """Delete ``path`` if it is still a marker of commit ``commit_id`` (not a later commit's)."""
    if marker_id(path) == commit_id:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def finish(journal: Journal) -> None:
    """Remove a completed commit's markers: pointers first, the primary last."""
    for pointer in journal.pointers:
        unlink_marker(pointer, journal.id)
        step("unmark")
    unlink_marker(journal.primary, journal.id)
