"""The arrays a ``Tokenizer`` encodes with, cached on disk per model file content.

A short command spends most of its time before the first byte is encoded: parsing a 6 MB JSON
model takes about 0.17 s and building its trie about 0.3 s (most of it numba's first dispatch of
the build kernels). Both depend only on the model file's bytes, so their result is stored once
in the user cache directory and later starts read it back memory-mapped (copy-on-write, so
processes share the pages) after hashing the model file (sha256, ~3 ms for 6 MB).

An entry is one ``.npy`` file of bytes: an HMAC-SHA256 of the rest, then a JSON header (format,
library version, model hash, array table) and the arrays, each 64-byte aligned. The HMAC key is
a random secret of this user, created once in the cache directory (``entries.key``, mode 0600);
so an entry that anyone else wrote or altered, even one that is well formed, is never used: a
crafted entry could otherwise change the ids a model gives without any error. An entry is used
only if it is a regular file of this user that only this user can write, its HMAC matches, and
every other check passes (header fields, names, dtypes and shapes, and index bounds, so that
even a bug can never make a kernel read outside an array); anything else is rebuilt from the
model and rewritten atomically (entries are replaced, never rewritten in place, so a mapping
stays valid while a process uses it). A cache directory where the key cannot be created, read
or trusted, or that cannot be written, is skipped without a message: the cache only ever saves
time. The cache is as trustworthy as its key: a cache directory copied from elsewhere together
with its key is trusted like one's own.

``$BYTEPIECE_CACHE_DIR`` overrides the location (empty: no cache); otherwise it is
``$XDG_CACHE_HOME/bytepiece`` or ``~/.cache/bytepiece``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ._read import map_npy, open_regular
from .model import (
    FIRST_PIECE_ID,
    SPECIAL_TOKENS_KEY,
    Model,
    ModelSource,
    load_model,
    load_model_bytes,
    read_metadata,
    read_model_file,
)

FORMAT = 2
_ALIGN = 64
_MAC_BYTES = 32
_LENGTH_BYTES = 8
_SUFFIX = ".npy"
KEY_NAME = "entries.key"
_KEY_BYTES = 32


class EncoderArrays(NamedTuple):
    """Everything encoding and decoding need from a model, as flat arrays (see ``kernels.trie``
    for the trie layout; the trie holds the pieces reversed, as the kernels walk them)."""

    base_check: npt.NDArray[np.int32]  # (2 * cells,) reversed-piece trie
    piece: npt.NDArray[np.int32]  # (cells,) id ending at a cell, or -1
    pair: npt.NDArray[np.int32]  # (65536,) cell after the first two steps of a walk, or -1
    cell_scores: npt.NDArray[np.float64]  # (cells,) log p of the piece ending at a cell, or -inf
    scores: npt.NDArray[np.float64]  # (vocab,) log p by id (0 for the special ids)
    counts: npt.NDArray[np.int64]  # (pieces,) by id - 3
    piece_bytes: npt.NDArray[np.uint8]  # all pieces concatenated, in id order
    piece_offsets: npt.NDArray[np.int64]  # (pieces + 1,) piece i is piece_bytes[off[i]:off[i + 1]]
    max_depth: int

    @property
    def vocab_size(self) -> int:
        return len(self.counts) + FIRST_PIECE_ID

    def pieces(self) -> list[bytes]:
        blob = self.piece_bytes.tobytes()
        bounds = self.piece_offsets.tolist()
        return [blob[a:b] for a, b in zip(bounds, bounds[1:])]


_DTYPES = {
    "base_check": np.int32, "piece": np.int32, "pair": np.int32, "cell_scores": np.float64,
    "scores": np.float64, "counts": np.int64, "piece_bytes": np.uint8, "piece_offsets": np.int64,
}


def load_arrays(source: ModelSource) -> tuple[EncoderArrays, Model | None, dict[str, Any]]:
    """(arrays, the parsed model or None, metadata): from the cache when ``source`` is a model
    file with a valid entry, else parsed and built (and then cached). The model file is read
    once: the arrays built are those of the bytes hashed."""
    if not isinstance(source, (str, os.PathLike)):
        model = load_model(source)
        return build_arrays(model), model, model.metadata
    path = Path(source)
    data = read_model_file(path)
    directory = cache_dir()
    key = None if directory is None else cache_key(directory)
    if directory is None or key is None:
        model = load_model_bytes(data, path)
        return build_arrays(model), model, model.metadata
    sha = model_sha256(data)
    entry = entry_path(directory, sha)
    hit = load_cached(entry, sha, key)
    if hit is not None:
        arrays, inline = hit
        return arrays, None, {**inline, **read_metadata(path)}
    model = load_model_bytes(data, path)
    arrays = build_arrays(model)
    sidecar = read_metadata(path)
    inline = {k: v for k, v in model.metadata.items() if k not in sidecar}
    if model.special_tokens:  # kept as the file keeps them, so a cache hit restores them
        inline[SPECIAL_TOKENS_KEY] = model.to_json_dict()[SPECIAL_TOKENS_KEY]
    store(entry, sha, arrays, inline, key)
    return arrays, model, model.metadata


def special_tokens(metadata: dict[str, Any], first_id: int) -> tuple[str, ...]:
    """The special tokens a cache entry kept in its metadata (removed from ``metadata``); their
    ids start at ``first_id``, right after the pieces."""
    from .model import _decode_special_tokens

    return _decode_special_tokens(metadata.pop(SPECIAL_TOKENS_KEY, None), first_id, "cached model")


def build_arrays(model: Model) -> EncoderArrays:
    """Compute the arrays of ``model`` (builds the trie with numba)."""
    from .kernels.trie import build_trie

    pieces = model.pieces
    n = model.vocab_size
    trie = build_trie([p[::-1] for p in pieces], np.arange(FIRST_PIECE_ID, n, dtype=np.int32))
    # Same float64 operations as the original (np.log per count minus np.log of the total), so
    # Viterbi ties resolve identically.
    scores = np.zeros(n, dtype=np.float64)
    scores[FIRST_PIECE_ID:] = np.log(model.counts.astype(np.float64)) - np.log(int(model.counts.sum()))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)), out=offsets[1:])
    arrays = EncoderArrays(
        base_check=trie.base_check, piece=trie.piece, pair=trie.pair_cells(),
        cell_scores=trie.cell_values(scores, -np.inf), scores=scores,
        counts=np.array(model.counts, dtype=np.int64),
        piece_bytes=np.frombuffer(b"".join(pieces), dtype=np.uint8), piece_offsets=offsets,
        max_depth=trie.max_depth,
    )
    return freeze(arrays)


def freeze(arrays: EncoderArrays) -> EncoderArrays:
    """Contiguous, aligned arrays of the declared dtypes. They stay writable (cached ones are
    copy-on-write mappings): numba types a read-only array differently, and each read-only
    argument adds about 30 ns to every kernel call, a tenth of a short ``encode``."""
    fields: dict[str, Any] = {}
    for name, value in zip(arrays._fields, arrays):
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value, dtype=_DTYPES[name])
            if value.ctypes.data % value.dtype.alignment or not value.flags.writeable:
                value = value.copy()
        fields[name] = value
    return EncoderArrays(**fields)


def cache_dir() -> Path | None:
    override = os.environ.get("BYTEPIECE_CACHE_DIR")
    if override is not None:
        return Path(override) if override else None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bytepiece"


def entry_path(directory: Path, model_sha256: str) -> Path:
    from . import __version__

    return directory / f"{model_sha256}.v{__version__}.f{FORMAT}{_SUFFIX}"


def cache_key(directory: Path) -> bytes | None:
    """This user's secret key for the entries in ``directory``, created on first use; None
    when it cannot be created or is not trustworthy (then the cache is not used)."""
    path = directory / KEY_NAME
    key = _read_key(path)
    if key is None and not os.path.lexists(path):
        _create_key(directory, path)
        key = _read_key(path)
    return key


def _read_key(path: Path) -> bytes | None:
    try:
        f, st = open_regular(path, what="cache key", error=ValueError, limit=_KEY_BYTES, private=True,
                             follow_symlinks=False)
    except ValueError:
        return None
    with f:
        key = f.read(_KEY_BYTES + 1)
    return key if len(key) == _KEY_BYTES and not st.st_mode & 0o077 else None


def _create_key(directory: Path, path: Path) -> None:
    """Write a new key beside, then link it into place: the link never replaces a key another
    process made meanwhile, and nobody ever sees a partial key."""
    tmp = directory / f".{KEY_NAME}.{os.getpid()}-{secrets.token_hex(8)}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except OSError:
        pass  # another process linked its key first, or no hard links here (then no cache)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_cached(path: Path, model_sha256: str, key: bytes) -> tuple[EncoderArrays, dict[str, Any]] | None:
    """The arrays and model metadata stored for ``model_sha256``, or None when the entry is
    missing, stale, damaged or not written with ``key``."""
    try:
        raw = map_npy(path, what="cache entry", error=ValueError, mode="c", private=True)
        return _decode(raw, model_sha256, key)
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, it is only a missed shortcut
        return None


def store(path: Path, model_sha256: str, arrays: EncoderArrays, metadata: dict[str, Any], key: bytes) -> None:
    """Write the entry atomically (a private temporary file renamed over whatever is at
    ``path``, even a FIFO, which ``atomic_open`` would write into and block on), readable and
    writable by this user only; silently give up where the directory is not writable. A torn
    entry, or the temporary file of a killed process, never passes the HMAC check."""
    payload = _payload(model_sha256, arrays, metadata, key)
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


def _payload(model_sha256: str, arrays: EncoderArrays, metadata: dict[str, Any], key: bytes) -> np.ndarray:
    table, chunks, offset = [], [], 0
    for name in _DTYPES:
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
    payload[:_MAC_BYTES] = np.frombuffer(_mac(key, payload[_MAC_BYTES:]), dtype=np.uint8)
    return payload


def _mac(key: bytes, content: np.ndarray) -> bytes:
    return hmac.new(key, np.ascontiguousarray(content).data, "sha256").digest()


def _body_start(header_length: int) -> int:
    return -(-(_MAC_BYTES + _LENGTH_BYTES + header_length) // _ALIGN) * _ALIGN


def model_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version() -> str:
    from . import __version__

    return __version__


def _decode(raw: np.ndarray, sha: str, key: bytes) -> tuple[EncoderArrays, dict[str, Any]]:
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.shape[0] < _MAC_BYTES + _LENGTH_BYTES:
        raise ValueError("not a cache entry")
    if not hmac.compare_digest(_mac(key, raw[_MAC_BYTES:]), raw[:_MAC_BYTES].tobytes()):
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
    if [row[0] for row in table] != list(_DTYPES):
        raise ValueError("unexpected arrays")
    found: dict[str, np.ndarray] = {}
    for name, dtype_str, shape, offset in table:
        dtype = np.dtype(dtype_str)
        if dtype != np.dtype(_DTYPES[name]) or len(shape) != 1 or offset % _ALIGN or offset < 0:
            raise ValueError(f"bad layout of {name}")
        nbytes = int(shape[0]) * dtype.itemsize
        if offset + nbytes > body.shape[0]:
            raise ValueError(f"{name} runs past the end")
        found[name] = np.asarray(body[offset : offset + nbytes]).view(dtype)
    arrays = freeze(EncoderArrays(**found, max_depth=int(header["max_depth"])))
    _check_bounds(arrays)
    metadata = header["metadata"]
    if not isinstance(metadata, dict):
        raise ValueError("bad metadata")
    return arrays, metadata


def _check_bounds(a: EncoderArrays) -> None:
    """Every index a kernel follows stays inside its array (the kernels do not check)."""
    cells = a.piece.shape[0]
    n_pieces = a.counts.shape[0]
    vocab = n_pieces + FIRST_PIECE_ID
    ok = (
        a.base_check.shape[0] == 2 * cells and cells > 256 and a.pair.shape[0] == 1 << 16
        and a.cell_scores.shape[0] == cells and a.scores.shape[0] == vocab
        and a.piece_offsets.shape[0] == n_pieces + 1 and 1 <= a.max_depth
    )
    if not ok:
        raise ValueError("inconsistent shapes")
    base, check = a.base_check[0::2], a.base_check[1::2]
    ok = (
        base.min() >= 0 and int(base.max()) + 256 <= cells and check.min() >= -1 and check.max() < cells
        and a.pair.min() >= -1 and a.pair.max() < cells and a.piece.min() >= -1 and a.piece.max() < vocab
        and a.piece_offsets[0] == 0 and a.piece_offsets[-1] == a.piece_bytes.shape[0]
        and bool(np.all(np.diff(a.piece_offsets) > 0)) and a.counts.min() > 0
    )
    if not ok:
        raise ValueError("index out of bounds")
