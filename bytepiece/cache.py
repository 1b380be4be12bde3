"""The arrays a ``Tokenizer`` encodes with, cached on disk per model file content.

A short command spends most of its time before the first byte is encoded: parsing a 6 MB JSON
model takes about 0.17 s and building its trie about 0.3 s (most of it numba's first dispatch of
the build kernels). Both depend only on the model file's bytes, so their result is stored once
in the user cache directory and later starts read it back with ``np.load`` (memory-mapped
copy-on-write, so processes share the pages) after hashing the model file (sha256, ~3 ms for 6 MB).

An entry is one ``.npy`` file of bytes: a JSON header (format, library version, model hash,
array table, crc32 of the array bytes) followed by the arrays, each 64-byte aligned. An entry is
used only if every check passes (header fields, names, dtypes and shapes, the crc32, and index
bounds, so a damaged file can never make a kernel read outside an array); anything else is
rebuilt from the model and rewritten atomically (entries are replaced, never rewritten in place,
so a mapping stays valid while a process uses it). A cache directory that cannot be created or
written is skipped without a message: the cache only ever saves time.

``$BYTEPIECE_CACHE_DIR`` overrides the location (empty: no cache); otherwise it is
``$XDG_CACHE_HOME/bytepiece`` or ``~/.cache/bytepiece``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .model import FIRST_PIECE_ID, MAX_MODEL_BYTES, SPECIAL_TOKENS_KEY, Model, ModelSource, load_model, metadata_path

FORMAT = 1
_ALIGN = 64
_LENGTH_BYTES = 8
_SUFFIX = ".npy"


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
    file with a valid entry, else parsed and built (and then cached)."""
    if isinstance(source, (str, os.PathLike)):
        directory = cache_dir()
        path = Path(source)
        try:
            # Only a regular file of a model's size is hashed here; anything else (a device, a
            # FIFO, a huge file) goes to load_model, which reads it with its caps and says why not.
            regular = path.is_file() and path.stat().st_size <= MAX_MODEL_BYTES
            data = path.read_bytes() if directory is not None and regular else None
        except OSError:
            data = None  # load_model below says what is wrong with the path
        if data is not None and directory is not None:
            sha = model_sha256(data)
            entry = entry_path(directory, sha)
            hit = load_cached(entry, sha)
            if hit is not None:
                arrays, inline = hit
                return arrays, None, {**inline, **read_sidecar_metadata(path)}
            model = load_model(path)
            arrays = build_arrays(model)
            try:
                unchanged = model_sha256(path.read_bytes()) == sha
            except OSError:
                unchanged = False
            if unchanged:  # the arrays really are those of the hashed bytes
                sidecar = read_sidecar_metadata(path)
                inline = {k: v for k, v in model.metadata.items() if k not in sidecar}
                if model.special_tokens:  # kept as the file keeps them, so a cache hit restores them
                    inline[SPECIAL_TOKENS_KEY] = model.to_json_dict()[SPECIAL_TOKENS_KEY]
                store(entry, sha, arrays, inline)
            return arrays, model, model.metadata
    model = load_model(source)
    return build_arrays(model), model, model.metadata


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


def load_cached(path: Path, model_sha256: str) -> tuple[EncoderArrays, dict[str, Any]] | None:
    """The arrays and model metadata stored for ``model_sha256``, or None when the entry is
    missing, stale or damaged in any way."""
    try:
        raw = np.load(path, mmap_mode="c", allow_pickle=False)
        return _decode(raw, model_sha256)
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, it is only a missed shortcut
        return None


def store(path: Path, model_sha256: str, arrays: EncoderArrays, metadata: dict[str, Any]) -> None:
    """Write the entry atomically; silently give up where the directory is not writable."""
    from .atomic import atomic_open

    table, chunks, offset = [], [], 0
    for name in _DTYPES:
        array = np.ascontiguousarray(getattr(arrays, name))
        offset = -(-offset // _ALIGN) * _ALIGN
        table.append([name, array.dtype.str, list(array.shape), offset])
        chunks.append((offset, array))
        offset += array.nbytes
    body = np.zeros(offset, dtype=np.uint8)
    for start, array in chunks:
        body[start : start + array.nbytes] = np.frombuffer(array.tobytes(), dtype=np.uint8)
    header = json.dumps({
        "format": FORMAT, "bytepiece": _version(), "model_sha256": model_sha256,
        "max_depth": arrays.max_depth, "metadata": metadata, "arrays": table, "crc32": zlib.crc32(body.data),
    }).encode("utf-8")
    start = -(-(_LENGTH_BYTES + len(header)) // _ALIGN) * _ALIGN
    payload = np.zeros(start + len(body), dtype=np.uint8)
    payload[:_LENGTH_BYTES] = np.frombuffer(len(header).to_bytes(_LENGTH_BYTES, "little"), dtype=np.uint8)
    payload[_LENGTH_BYTES : _LENGTH_BYTES + len(header)] = np.frombuffer(header, dtype=np.uint8)
    payload[start:] = body
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.save(f, payload, allow_pickle=False)
    except (OSError, ValueError):
        pass


def model_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sidecar_metadata(model_path: Path) -> dict[str, Any]:
    """The ``MODEL.meta.json`` sidecar, read as ``load_model`` reads it (unreadable: empty)."""
    meta_file = metadata_path(model_path)
    try:
        value = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _version() -> str:
    from . import __version__

    return __version__


def _decode(raw: np.ndarray, sha: str) -> tuple[EncoderArrays, dict[str, Any]]:
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1 or raw.shape[0] < _LENGTH_BYTES:
        raise ValueError("not a cache entry")
    length = int.from_bytes(raw[:_LENGTH_BYTES].tobytes(), "little")
    if length > raw.shape[0] - _LENGTH_BYTES:
        raise ValueError("truncated header")
    header = json.loads(raw[_LENGTH_BYTES : _LENGTH_BYTES + length].tobytes())
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("bytepiece") != _version() \
            or header.get("model_sha256") != sha:
        raise ValueError("stale entry")
    start = -(-(_LENGTH_BYTES + length) // _ALIGN) * _ALIGN
    body = raw[start:]
    if zlib.crc32(np.ascontiguousarray(body).data) != header["crc32"]:
        raise ValueError("checksum mismatch")
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
