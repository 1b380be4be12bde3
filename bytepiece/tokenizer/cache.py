"""The arrays a ``Tokenizer`` encodes with, cached on disk per model file content.

A short command spends most of its time before the first byte is encoded: parsing a 6 MB JSON
model takes about 0.17 s and building its trie about 0.3 s (most of it numba's first dispatch of
the build kernels). Both depend only on the model file's bytes, so their result is stored once
in the user cache directory and later starts read it back memory-mapped (copy-on-write, so
processes share the pages) after hashing the model file (sha256, ~3 ms for 6 MB).

An entry is one ``.npy`` file of bytes: an HMAC-SHA256 of the rest, then a JSON header (format,
library version, model hash, array table) and the arrays, each 64-byte aligned. The HMAC key is
this user's secret (:mod:`bytepiece.io.secret`), so an entry that anyone else wrote or altered, even one that is well formed, is never used: a
crafted entry could otherwise change the ids a model gives without any error. An entry is used
only if it is a regular file of this user that only this user can write, its HMAC matches, and
every other check passes (header fields, names, dtypes and shapes, and index bounds, so that
even a bug can never make a kernel read outside an array); anything else is rebuilt from the
model and rewritten atomically (entries are replaced, never rewritten in place, so a mapping
stays valid while a process uses it). Without a key that can be trusted, or in a directory
that cannot be written, the cache is skipped without a message: it only ever saves time.

``$BYTEPIECE_CACHE_DIR`` overrides the location (empty: no cache); otherwise it is
``$XDG_CACHE_HOME/bytepiece`` or ``~/.cache/bytepiece``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io import secret
from ..io.read import map_npy
from .arrays import DTYPES, EncoderArrays, check_bounds, freeze

FORMAT = 3
_ALIGN = 64
_MAC_BYTES = 32
_LENGTH_BYTES = 8
_SUFFIX = ".npy"
#: what an entry's MAC is over, before its bytes (no other file's MAC can pass for it)
MAC_CONTEXT = b"bytepiece-cache/3\n"


def cache_dir() -> Path | None:
    """Where entries are kept: the user's bytepiece directory, None when
    ``$BYTEPIECE_CACHE_DIR`` is set empty (no cache)."""
    if os.environ.get("BYTEPIECE_CACHE_DIR") == "":
        return None
    return secret.user_dir()


def entry_path(directory: Path, model_sha256: str) -> Path:
    from .. import __version__

    return directory / f"{model_sha256}.v{__version__}.f{FORMAT}{_SUFFIX}"


def load_cached(path: Path, model_sha256: str) -> tuple[EncoderArrays, dict[str, Any]] | None:
    """The arrays and model metadata stored for ``model_sha256``, or None when the entry is
    missing, stale, damaged or not written under this user's key."""
    try:
        raw = map_npy(path, what="cache entry", error=ValueError, mode="c", private=True)
        return _decode(raw, model_sha256)
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, it is only a missed shortcut
        return None


def store(path: Path, model_sha256: str, arrays: EncoderArrays, metadata: dict[str, Any]) -> None:
    """Write the entry atomically (a private temporary file renamed over whatever is at
    ``path``, even a FIFO, which ``atomic_open`` would write into and block on), readable and
    writable by this user only; silently give up where the directory is not writable. A torn
    entry, or the temporary file of a killed process, never passes the HMAC check."""
    payload = _payload(model_sha256, arrays, metadata)
    if payload is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
        with os.fdopen(fd, "wb") as f:
            np.save(f, payload, allow_pickle=False)
        os.replace(tmp, path)
        tmp = None
    except (OSError, ValueError):
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _payload(model_sha256: str, arrays: EncoderArrays, metadata: dict[str, Any]) -> np.ndarray | None:
    """The entry's bytes, or None without a key to sign them."""
    table, chunks, offset = [], [], 0
    for name in DTYPES:
        array = np.ascontiguousarray(getattr(arrays, name))
        offset = -(-offset // _ALIGN) * _ALIGN
        table.append([name, array.dtype.str, list(array.shape), offset])
        chunks.append((offset, array))
        offset += array.nbytes
    header = json.dumps({
        "format": FORMAT, "bytepiece": _version(), "model_sha256": model_sha256,
        "max_depth": arrays.max_depth, "metadata": metadata, "arrays": table,
    }).encode("utf-8")
    start = _body_start(len(header))
    payload = np.zeros(start + offset, dtype=np.uint8)
    at = _MAC_BYTES + _LENGTH_BYTES
    payload[_MAC_BYTES:at] = np.frombuffer(len(header).to_bytes(_LENGTH_BYTES, "little"), dtype=np.uint8)
    payload[at : at + len(header)] = np.frombuffer(header, dtype=np.uint8)
    for offset, array in chunks:
        payload[start + offset : start + offset + array.nbytes] = np.frombuffer(array.tobytes(), dtype=np.uint8)
    tag = secret.mac(MAC_CONTEXT, payload[_MAC_BYTES:].data)
    if tag is None:
        return None
    payload[:_MAC_BYTES] = np.frombuffer(tag, dtype=np.uint8)
    return payload


def _body_start(header_length: int) -> int:
    return -(-(_MAC_BYTES + _LENGTH_BYTES + header_length) // _ALIGN) * _ALIGN


def model_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version() -> str:
    from .. import __version__

    return __version__


def _decode(raw: np.ndarray, sha: str) -> tuple[EncoderArrays, dict[str, Any]]:
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.shape[0] < _MAC_BYTES + _LENGTH_BYTES:
        raise ValueError("not a cache entry")
    if not secret.verify(MAC_CONTEXT, np.ascontiguousarray(raw[_MAC_BYTES:]).data, raw[:_MAC_BYTES].tobytes()):
        raise ValueError("not written with this user's key")
    length = int.from_bytes(raw[_MAC_BYTES : _MAC_BYTES + _LENGTH_BYTES].tobytes(), "little")
    if length > raw.shape[0] - _MAC_BYTES - _LENGTH_BYTES:
        raise ValueError("truncated header")
    header = json.loads(raw[_MAC_BYTES + _LENGTH_BYTES : _MAC_BYTES + _LENGTH_BYTES + length].tobytes())
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("bytepiece") != _version() \
            or header.get("model_sha256") != sha:
        raise ValueError("stale entry")
    body = raw[_body_start(length):]
    table = header["arrays"]
    if [row[0] for row in table] != list(DTYPES):
        raise ValueError("unexpected arrays")
    found: dict[str, np.ndarray] = {}
    for name, dtype_str, shape, offset in table:
        dtype = np.dtype(dtype_str)
        if dtype != np.dtype(DTYPES[name]) or len(shape) != 1 or offset % _ALIGN or offset < 0:
            raise ValueError(f"bad layout of {name}")
        nbytes = int(shape[0]) * dtype.itemsize
        if offset + nbytes > body.shape[0]:
            raise ValueError(f"{name} runs past the end")
        found[name] = np.asarray(body[offset : offset + nbytes]).view(dtype)
    arrays = freeze(EncoderArrays(**found, max_depth=int(header["max_depth"])))
    check_bounds(arrays)
    metadata = header["metadata"]
    if not isinstance(metadata, dict):
        raise ValueError("bad metadata")
    return arrays, metadata
