"""Sizes as users write them and as bytepiece shows them: binary units throughout.

``--max-memory 1G``, ``shard_size="256M"`` and every size printed (``1.5 MiB``, ``12.3 MiB/s``)
use powers of 1024, and what is printed is labelled with the binary prefixes so that a size
shown can be given back as it reads.
"""

from __future__ import annotations

import re

from .errors import InputError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: str | int | float, *, name: str = "size") -> int:
    """Bytes of ``"1G"``, ``"512MB"``, ``"1.5GiB"`` or a plain number (powers of 1024)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a size such as 1G or 512M, got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0 or value != value:
            raise InputError(f"{name} must be positive, got {value!r}")
        return int(value)
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise InputError(f"{name} must be a size such as 1G, 512M or 2GB, got {value!r}")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise InputError(f"{name} must be positive, got {value!r}")
    return size


def format_size(n: float) -> str:
    """Bytes in binary units, labelled as such (``1.5 MiB``): the units that size options take
    (``--max-memory 1G`` is 1 GiB), so a size shown can be given back as it reads."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover


def format_rate(n_bytes: float, seconds: float) -> str:
    """A throughput in the units of :func:`format_size` (``12.3 MiB/s``)."""
    if seconds <= 0:
        return "- MiB/s"
    return f"{n_bytes / seconds / (1 << 20):,.1f} MiB/s"
