"""The arrays a model is segmented with (:class:`EncoderArrays`), how they are built from a
model, and the checks that make them safe to hand to the kernels, which check nothing."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..kernels.trie import Trie
from ..model import Model
from ..vocab import FIRST_PIECE_ID


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


DTYPES = {
    "base_check": np.int32, "piece": np.int32, "pair": np.int32, "cell_scores": np.float64,
    "scores": np.float64, "counts": np.int64, "piece_bytes": np.uint8, "piece_offsets": np.int64,
}


def reversed_trie(pieces: list[bytes], piece_bytes: bytes, offsets: npt.NDArray[np.int64]) -> Trie:
    """The trie of the reversed pieces (ids from ``FIRST_PIECE_ID`` in order): the shipped one
    of the default model (:mod:`.shipped`), otherwise built with numba."""
    from ..kernels.trie import build_trie
    from .shipped import pieces_key, shipped_trie

    trie = shipped_trie(pieces_key(piece_bytes, offsets))
    if trie is not None:
        return trie
    return build_trie([p[::-1] for p in pieces], np.arange(FIRST_PIECE_ID, FIRST_PIECE_ID + len(pieces), dtype=np.int32))


def build_arrays(model: Model) -> EncoderArrays:
    """Compute the arrays of ``model`` (builds the trie with numba unless it ships with bytepiece)."""
    pieces = model.pieces
    n = model.vocab_size
    piece_bytes = b"".join(pieces)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)), out=offsets[1:])
    trie = reversed_trie(pieces, piece_bytes, offsets)
    # Same float64 operations as the original (np.log per count minus np.log of the total), so
    # Viterbi ties resolve identically.
    scores = np.zeros(n, dtype=np.float64)
    scores[FIRST_PIECE_ID:] = np.log(model.counts.astype(np.float64)) - np.log(int(model.counts.sum()))
    arrays = EncoderArrays(
        base_check=trie.base_check, piece=trie.piece, pair=trie.pair_cells(),
        cell_scores=trie.cell_values(scores, -np.inf), scores=scores,
        counts=np.array(model.counts, dtype=np.int64),
        piece_bytes=np.frombuffer(piece_bytes, dtype=np.uint8), piece_offsets=offsets,
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
            value = np.ascontiguousarray(value, dtype=DTYPES[name])
            if value.ctypes.data % value.dtype.alignment or not value.flags.writeable:
                value = value.copy()
        fields[name] = value
    return EncoderArrays(**fields)


def check_bounds(a: EncoderArrays) -> None:
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
