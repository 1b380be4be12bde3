"""Spill directories of killed runs (see :mod:`bytepiece.engine.spill`).

A spill directory is named ``bytepiece-spill-<host>-<pid>-<random>`` and its process holds an
``flock`` on the ``lock`` file inside it while it runs. A run that ended without its cleanup
(SIGKILL, power loss) leaves it behind; the next run on the same host removes it once the pid
no longer runs *and* the lock is free (both, so neither pid reuse nor another pid namespace
sharing the directory can get a live one deleted). Only directories named exactly so and owned
by this user are considered.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

SPILL_PREFIX = "bytepiece-spill-"
_LOCK = "lock"


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _lock_free(directory: Path) -> bool:
    """Whether nobody holds the lock of a spill directory (a missing lock: its process died
    before taking it)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return True
    try:
        fd = os.open(directory / _LOCK, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def take_lock(directory: Path) -> int:
    """Lock a new spill directory for the life of this process (-1 where that is not possible:
    the pid in its name still protects it)."""
    try:
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        return -1
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale_spills(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete the spill directories in ``parent`` (default: the system temporary directory) left
    by killed runs: named as ours for this host, owned by this user, their pid no longer running
    and their lock free. Returns the directories removed."""
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    pattern = re.compile(re.escape(SPILL_PREFIX + host_name()) + r"-([0-9]+)-[a-z0-9_]{8}")
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    removed = []
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        path = parent / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and uid in (None, st.st_uid) and _lock_free(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
