"""The per-user secret that authenticates commit journals (see :mod:`bytepiece._journal`).

A journal tells a later process to rename and delete files, so that process must be able to
prove the journal is one this user's bytepiece wrote for that very directory; a file found in a
downloaded, extracted or cloned directory proves nothing by its owner or its name. Every journal
therefore carries an HMAC-SHA256 of its whole record (directory, marker name, commit id,
writer pid, every operation) under a key that only this user can read. A journal planted in a
directory, copied from another directory or written by another user does not verify.

The key is 32 random bytes in ``commit.key`` of the user cache directory
(``$BYTEPIECE_CACHE_DIR`` if set and non-empty, else ``$XDG_CACHE_HOME/bytepiece`` or
``~/.cache/bytepiece``), created once with mode 0600. A key that cannot be created, or is not
private (a symlink, another owner, readable by others, the wrong size), is not used: journals
are then written without a MAC and never acted upon by another process; writing still works.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

KEY_NAME = "commit.key"
KEY_BYTES = 32
_CONTEXT = b"bytepiece-commit/2\n"

_keys: dict[str, bytes | None] = {}


def key_path() -> Path:
    root = os.environ.get("BYTEPIECE_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "bytepiece")
    return Path(root) / KEY_NAME


def key() -> bytes | None:
    """This user's journal key, created on first use; None when there is none to be had."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX: no recovery at all
        return None
    path = key_path()
    if str(path) in _keys:
        return _keys[str(path)]
    found = _read(path)
    if found is None and not os.path.lexists(path):
        _create(path)
        found = _read(path)
    _keys[str(path)] = found
    return found


def _read(path: Path) -> bytes | None:
    """The key, if ``path`` is a private regular file of this user holding exactly one key."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077 \
                or st.st_size != KEY_BYTES:
            return None
        data = os.read(fd, KEY_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == KEY_BYTES else None


def _create(path: Path) -> None:
    """Write a new key without ever exposing a partial one: written to a private temporary,
    then linked into place (a process that loses the race reads the winner's key)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    tmp = path.with_name(f".{KEY_NAME}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError:
        return
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _message(fields: dict) -> bytes:
    return _CONTEXT + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign(fields: dict) -> str | None:
    """The MAC of a record (``fields`` without its ``mac``), or None without a key."""
    secret = key()
    if secret is None:
        return None
    return hmac.new(secret, _message(fields), hashlib.sha256).hexdigest()


def verify(record: dict) -> bool:
    """Whether ``record`` carries a valid MAC under this user's key."""
    mac = record.get("mac")
    secret = key()
    if secret is None or not isinstance(mac, str):
        return False
    fields = {k: v for k, v in record.items() if k != "mac"}
    try:
        expected = hmac.new(secret, _message(fields), hashlib.sha256).hexdigest()
    except (TypeError, ValueError, RecursionError):
        return False
    return hmac.compare_digest(expected, mac)
