"""The secret of this user that authenticates what bytepiece leaves on disk for itself.

Two kinds of files tell a later bytepiece process what to do or what to trust: commit journals
(rename and delete these files: :mod:`.journal`) and model cache entries (encode with these
arrays: ``bytepiece.tokenizer.cache``). A file found in a downloaded, extracted or cloned
directory proves nothing by its owner or its name, so both carry an HMAC-SHA256 under a key only
this user can read, each over a message that starts with its own context string (a journal's
MAC can never pass for a cache entry's).

The key is 32 random bytes in ``secret.key`` of the user's bytepiece directory
(``$BYTEPIECE_CACHE_DIR`` if set and non-empty, else ``$XDG_CACHE_HOME/bytepiece`` or
``~/.cache/bytepiece``), created once with mode 0600 without ever exposing a partial key. A key
that cannot be created, or is not private (a symlink, another owner, readable by others, the
wrong size, not a regular file), is not used: nothing is then signed and nothing is trusted
(journals are not recovered, the cache is off); everything else works. A directory copied from
elsewhere together with its key is trusted like one's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .read import open_regular

KEY_NAME = "secret.key"
KEY_BYTES = 32

_keys: dict[str, bytes | None] = {}


def user_dir() -> Path:
    """The user's bytepiece directory (the model cache and the key live there)."""
    root = os.environ.get("BYTEPIECE_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "bytepiece")
    return Path(root)


def key_path() -> Path:
    return user_dir() / KEY_NAME


def key() -> bytes | None:
    """This user's key, created on first use; None when there is none to be had."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX: nothing is trusted
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


def forget() -> None:
    """Read the key again on next use (tests change ``$BYTEPIECE_CACHE_DIR``)."""
    _keys.clear()


def mac(context: bytes, data: bytes | memoryview) -> bytes | None:
    """HMAC-SHA256 of ``context`` + ``data`` under this user's key, or None without a key."""
    secret = key()
    if secret is None:
        return None
    digest = hmac.new(secret, context, hashlib.sha256)
    digest.update(data)
    return digest.digest()


def verify(context: bytes, data: bytes | memoryview, tag: bytes) -> bool:
    """Whether ``tag`` is :func:`mac` of the message (constant time; False without a key)."""
    expected = mac(context, data)
    return expected is not None and hmac.compare_digest(expected, tag)


def _read(path: Path) -> bytes | None:
    """The key, if ``path`` is a private regular file of this user holding exactly one key."""
    try:
        f, st = open_regular(path, what="key", error=ValueError, limit=KEY_BYTES, private=True, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    with f:
        data = f.read(KEY_BYTES + 1)
    return data if len(data) == KEY_BYTES and not st.st_mode & 0o077 else None


def _create(path: Path) -> None:
    """Write a new key to a private temporary, then link it into place: the link never replaces
    a key another process made meanwhile (that process's key is read instead), and nobody ever
    sees a partial key."""
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
