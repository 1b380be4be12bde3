"""What killed runs leave behind, and how a later run recognises and removes it.

A run's working directories (spilled counts, staged token shards) are named
``<prefix><host>-<pid>-<random>`` and hold a ``lock`` file whose ``flock`` their process keeps
while it runs. A run that ended without its cleanup (SIGKILL, power loss) leaves them behind;
the next run on the same host removes them once the pid no longer runs *and* the lock is free
(both, so neither pid reuse nor another pid namespace sharing the directory can get a live one
deleted). Only directories named exactly so and owned by this user are considered. Temporaries
of outputs follow the same rule (:mod:`.recovery`), with the lock on the file itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
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
_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (this process counts as alive: another of its
    threads may be the writer)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def lock_free(path: Path) -> bool:
    """Whether nobody holds the ``flock`` of the file ``path`` (a missing file: its process died
    before taking it)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return True
    try:
        fd = os.open(path, _NO_FOLLOW)
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


def run_dir(parent: str | os.PathLike[str] | None, prefix: str) -> tuple[Path, int]:
    """A new working directory of this run in ``parent`` (default: the system temporary
    directory), named so that later runs can tell when it is stale, and the descriptor of its
    lock (-1 where locks are not available: the pid in the name still protects it). Stale
    directories of the same prefix are removed first."""
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    remove_stale_dirs(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{host_name()}-{os.getpid()}-", dir=parent))
    return path, take_lock(path)


def run_dir_name(parent: Path, prefix: str) -> Path:
    """The name :func:`run_dir` would give, for a caller that creates the directory itself
    (later, inside its own cleanup scope); stale directories are removed first."""
    remove_stale_dirs(parent, prefix)
    return parent / f"{prefix}{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"


def take_lock(directory: Path) -> int:
    """Lock a new working directory for the life of this process (-1 where not possible)."""
    try:
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        return -1
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale_dirs(parent: Path, prefix: str, *, prefix_pattern: str | None = None) -> list[Path]:
    """Delete the directories in ``parent`` left by killed runs: named ``prefix`` (or a match of
    the regular expression ``prefix_pattern``) + this host, owned by this user, their pid no
    longer running and their lock free. Returns them."""
    start = re.escape(prefix) if prefix_pattern is None else prefix_pattern
    pattern = re.compile(start + re.escape(host_name()) + r"-([0-9]+)-[A-Za-z0-9_]+")
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    removed = []
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or process_alive(int(m.group(1))):
            continue
        path = parent / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and uid in (None, st.st_uid) and lock_free(path / _LOCK):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_stale_spills(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """:func:`remove_stale_dirs` for spill directories (default: in the system temporary
    directory)."""
    return remove_stale_dirs(Path(tempfile.gettempdir() if parent is None else parent), SPILL_PREFIX)
