"""Atomic file output: write beside the target, then ``os.replace`` it into place.

A reader never sees a half-written model, token file or export, and an error (or Ctrl-C) leaves
the previous file untouched. ``tempfile.mkstemp`` makes its files private (0600); outputs here are
meant to be shared, so they get the mode a plain ``open(path, "w")`` gives (0666 minus the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def default_mode() -> int:
    """0666 minus the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def make_temp(path: Path) -> tuple[int, Path]:
    """An open descriptor and the name of a new temporary file beside ``path`` (normal mode)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, default_mode())
    except OSError:  # pragma: no cover - filesystems without permissions
        pass
    return fd, Path(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, overwrite: bool = True) -> Iterator[IO]:
    """``open`` for writing (``"w"`` text UTF-8 with ``\\n`` line ends, or ``"wb"``) whose file
    appears at ``path`` only when the block finishes without an exception."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --force) to replace it")
    fd, tmp = make_temp(path)
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        with f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_open(path, "wb", overwrite=overwrite) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def check_writable(paths: list[Path] | list[str], *, overwrite: bool = False) -> None:
    """Fail now, before any work, if the outputs ``paths`` could not be written: an existing file
    without ``overwrite``, a directory in the way, a missing or unwritable directory."""
    from .errors import InputError

    existing = []
    for p in map(Path, paths):
        if p.is_dir():
            raise InputError(f"output {p} is a directory; pass a file name")
        if p.exists():
            existing.append(str(p))
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"output directory {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"output directory {parent} is not writable")
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                              "pass --force (overwrite=True) to replace")
