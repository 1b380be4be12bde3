"""Finishing interrupted commits and removing dead writers' temporaries (see :mod:`bytepiece.io.journal`).

Only writers call this (:class:`bytepiece.io.atomic.OutputSet` before its first file in a
directory); reading a model or token file never changes anything on disk.

Recovery acts on a marker only when all of this holds; otherwise the marker is left exactly as
it is (one warning names it) and nothing it mentions is touched:

- it is a regular file of this user (not a symlink, FIFO, device or directory), at most 1 MiB;
- its HMAC verifies under this user's key (:mod:`bytepiece.io.secret`), and the directory and
  file name it records are where it really is: a journal planted in a downloaded directory,
  copied from another directory or written by another user or under another key fails here;
- every operation names plain file names in an absolute directory that has its own marker of
  the same commit (so each target and temporary sits beside a marker that proves the commit);
- a temporary is named as this target's temporaries are, and is still the very file the writer
  journalled (same inode); a file to remove is still the one the writer meant to remove (same
  inode, size and mtime), so a journal replayed later never deletes a newer file.

Temporaries (``.NAME.bp<pid>-<8 hex>.tmp``) are deleted when they are regular files of this user,
their pid does not run on this machine and nobody holds their lock: files named as bytepiece names
its own temporaries, which hold nothing but an unfinished copy of an output.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import warnings
from pathlib import Path

from . import journal as J
from . import secret
from .stale import process_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _ignore(path: Path, why: str) -> None:
    """Warn that ``path`` is left alone (Python shows a repeated warning once)."""
    warnings.warn(f"left {path} alone: {why}. bytepiece only acts on commit journals it wrote there itself; if no "
                  "bytepiece write into that directory was interrupted, delete the file", RuntimeWarning, stacklevel=4)


def _load(path: Path) -> dict | None:
    """The record of the marker ``path`` if this user's bytepiece wrote it right there, else None."""
    try:
        fd = os.open(path, _NO_FOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        _ignore(path, f"not a readable commit record ({e.strerror})")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > J.MAX_MARKER_BYTES:
            _ignore(path, "not a bytepiece commit record")
            return None
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            _ignore(path, f"a file of another user (uid {st.st_uid})")
            return None
        data = os.read(fd, J.MAX_MARKER_BYTES + 1)
    except OSError as e:
        _ignore(path, f"not a readable commit record ({e.strerror})")
        return None
    finally:
        os.close(fd)
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        record = None
    if not (isinstance(record, dict) and record.get("format") == J.FORMAT and record.get("version") == J.VERSION
            and record.get("kind") in ("journal", "pointer") and isinstance(record.get("id"), str)):
        _ignore(path, "not a commit record of this bytepiece version")
        return None
    if record.get("dir") != os.path.realpath(os.fspath(path.parent)) or record.get("name") != path.name:
        _ignore(path, "a commit record written for another place (copied or moved here)")
        return None
    if not J.verified(record):
        why = "no key to check it with" if secret.key() is None else "its signature does not verify"
        _ignore(path, f"a commit record bytepiece cannot prove it wrote ({why}: {secret.key_path()})")
        return None
    return record


def _plain(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _checked_ops(record: dict) -> list[dict] | None:
    """The journal's operations, if every one is well formed (plain names in an absolute, real
    directory; a temporary named as its target's temporaries are)."""
    ops = record.get("ops")
    if not isinstance(ops, list) or not ops:
        return None
    for op in ops:
        if not (isinstance(op, dict) and op.get("op") in ("replace", "remove") and _plain(op.get("target"))
                and isinstance(op.get("dir"), str) and os.path.isabs(op["dir"])
                and os.path.realpath(op["dir"]) == op["dir"]):
            return None
        if op["op"] == "replace":
            m = J.TEMP.fullmatch(str(op.get("tmp")))
            if not _plain(op.get("tmp")) or m is None or m.group("name") != J.short_name(op["target"]):
                return None
    return ops


def _marker_of(op: dict) -> Path:
    return J.marker_path(Path(op["dir"]) / op["target"])


def _beside_marker(primary: Path, record: dict, op: dict) -> bool:
    """Whether ``op``'s own marker (the primary, or a pointer of this commit) is still there: each
    target and temporary must sit beside a marker that proves the commit. A missing pointer means
    the operation is done (``finish`` removes pointers only after every operation)."""
    marker = _marker_of(op)
    if marker == primary:
        return True
    if not os.path.lexists(marker):
        return False
    pointer = _load(marker)
    return pointer is not None and pointer["kind"] == "pointer" and pointer["id"] == record["id"]


def _identity_holds(path: Path, op: dict, fields: tuple[str, ...]) -> bool:
    """Whether ``path`` is still the file the writer journalled (same ``fields`` of its lstat)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return all(op.get(field) == getattr(st, f"st_{field}") for field in fields)


def _roll_forward(record: dict) -> None:
    primary = Path(record["dir"]) / record["name"]  # where _load found it, symlinks resolved
    ops = _checked_ops(record)
    if ops is None:
        _ignore(primary, "a commit journal with malformed operations")
        return
    for op in ops:
        if not _beside_marker(primary, record, op):
            continue
        directory = Path(op["dir"])
        target = directory / op["target"]
        with contextlib.suppress(FileNotFoundError):
            if op["op"] == "replace":
                tmp = directory / op["tmp"]
                if _identity_holds(tmp, op, ("ino",)) and stat.S_ISREG(os.lstat(tmp).st_mode):
                    os.replace(tmp, target)
            elif op.get("ino") is not None and _identity_holds(target, op, ("ino", "size", "mtime_ns")):
                os.unlink(target)
        J.step(op["op"])
    for directory_text in {op["dir"] for op in ops}:
        J.fsync_dir(Path(directory_text))
    for marker in dict.fromkeys(_marker_of(op) for op in ops):
        if marker != primary:
            J.unlink_marker(marker, record["id"])
            J.step("unmark")
    J.unlink_marker(primary, record["id"])


def _recover_marker(marker: Path) -> None:
    record = _load(marker)
    if record is None:
        return
    if record["kind"] == "journal":
        _roll_forward(record)
        return
    primary = record.get("primary")
    if not (isinstance(primary, str) and os.path.isabs(primary) and primary.endswith(J.MARKER_SUFFIX)):
        _ignore(marker, "a malformed commit pointer")
        return
    if os.path.lexists(primary):
        journal = _load(Path(primary))
        if journal is None:
            return  # a primary that cannot be proven: leave both as they are
        if journal["kind"] == "journal" and journal["id"] == record["id"]:
            _roll_forward(journal)
            return
    # The commit never reached its journal (the writer died before its commit point): stale.
    J.unlink_marker(marker, record["id"])


def recover(path: str | os.PathLike) -> None:
    """Complete an interrupted commit that involves ``path`` (one ``lstat`` when there is none).
    For writers: call it before replacing ``path``, never merely to read it."""
    target = Path(os.path.realpath(os.fspath(path)))
    marker = J.marker_path(target)
    if os.path.lexists(marker):
        _recover_marker(marker)


def _stale_temp(path: Path) -> bool:
    """A regular file of this user whose writer's lock is free."""
    try:
        fd = os.open(path, _NO_FOLLOW)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
            return False
        if fcntl is not None:
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
        if name.startswith(".") and name.endswith(J.MARKER_SUFFIX):
            _recover_marker(directory / name)
    removed = []
    for name in names:
        m = J.TEMP.fullmatch(name)
        if m is None or process_alive(int(m.group("pid"))):
            continue
        path = directory / name
        if _stale_temp(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed
