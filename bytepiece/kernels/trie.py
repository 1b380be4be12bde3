"""A double-array trie over byte pieces, built and stored as flat numpy arrays.

Layout: ``base_check`` interleaves int32 pairs, ``[base(0), check(0), base(1), check(1), ...]``
(flat, so a kernel indexes ``2 * n`` without stride arithmetic). The child of cell ``n`` on byte
``c`` is ``m = base_check[2 * n] + c`` and exists iff ``base_check[2 * m + 1] == n``; ``piece[m]`` is
the id of the piece spelled by the path to ``m`` (or -1). Only ``base_check`` lies on the chain
of dependent loads that decides the speed of a walk, so it is kept as small as possible (8 bytes
a cell: the tries of 80k-160k vocabularies fit in L2); per-cell values the Viterbi needs (scores,
sampling weights) live in separate arrays that the CPU can load off the critical path. Cells are
assigned breadth-first, so short prefixes (the hot part of every walk) sit together at the start.

The construction kernels live in ``trie_build`` and are imported when a trie is built: a
tokenizer whose arrays come from the model cache never needs numba to get its trie.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .stand_ins import small

ROOT = 0


class Trie(NamedTuple):
    base_check: npt.NDArray[np.int32]  # (2 * n_cells,) interleaved base, check
    piece: npt.NDArray[np.int32]  # (n_cells,) piece id ending at the cell, or -1
    max_depth: int

    def pair_cells(self) -> npt.NDArray[np.int32]:
        """``out[(c1 << 8) | c2]``: the cell reached from the root by bytes c1 then c2, or -1.

        One load from a 256 KB table replaces the first two dependent steps of a walk (the
        hottest ones: every walk takes them). Meant for tries in which every single byte is a
        key, so the first step never fails."""
        bc = self.base_check  # indexed with small int64 arrays: no copy of the (large) trie
        first = int(bc[0]) + np.arange(256, dtype=np.int64)
        second = bc[2 * first].astype(np.int64)[:, None] + np.arange(256, dtype=np.int64)[None, :]
        exists = bc[2 * second + 1] == first[:, None]
        return np.where(exists, second, -1).astype(np.int32).reshape(-1)

    def cell_values(self, values_by_id: npt.NDArray[np.float64], missing: float) -> npt.NDArray[np.float64]:
        """Per-cell copy of a per-id array (``missing`` where no piece ends), as the kernels take it."""
        out = np.full(len(self.piece), missing, dtype=np.float64)
        terminal = self.piece >= 0
        out[terminal] = values_by_id[self.piece[terminal]]
        return out


def build_trie(pieces: list[bytes], ids: npt.NDArray[np.int32] | None = None) -> Trie:
    """Build the double-array trie of ``pieces``; ``ids[i]`` is the id stored for ``pieces[i]``."""
    from .trie_build import build_double_array

    if ids is None:
        ids = np.arange(len(pieces), dtype=np.int32)
    order = sorted(range(len(pieces)), key=pieces.__getitem__)
    sorted_pieces = [pieces[i] for i in order]
    lengths = np.fromiter(map(len, sorted_pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # writable, as the arrays the trainer builds tries from: one compiled build_double_array
    buf = np.frombuffer(bytearray(b"".join(sorted_pieces)), dtype=np.uint8)
    sorted_ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int32)[np.array(order, dtype=np.int64)])
    base_check, piece = build_double_array(buf, offsets, sorted_ids)
    return Trie(base_check, piece, int(lengths.max()) if len(lengths) else 0)


#: up to this many pieces, ``lexicographic_order`` sorts in Python (under 40 ms): README's
#: training job then never compiles ``refine_ties`` and its sort (2.2 s of a first run's CPU)
PYTHON_SORT_MAX = 1 << 15


def lexicographic_order(arena: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The order that sorts the pieces ``arena[offsets[i]:offsets[i+1]]`` by their bytes, exactly
    (a prefix first; equal pieces keep their order). Beyond ``PYTHON_SORT_MAX`` pieces, without
    making a Python object per piece: a stable sort by the first eight bytes, then
    ``refine_ties`` on the groups that tie."""
    n = len(offsets) - 1
    if small(n, PYTHON_SORT_MAX):
        bounds = offsets.tolist()
        pieces = [arena[bounds[i]:bounds[i + 1]].tobytes() for i in range(n)]
        return np.array(sorted(range(n), key=pieces.__getitem__), dtype=np.int64)
    return kernel_lexicographic_order(arena, offsets)


def kernel_lexicographic_order(arena: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """:func:`lexicographic_order` by the kernels, whatever the number of pieces."""
    from .runs import prefix_keys, refine_ties

    first = prefix_keys(arena, offsets, 0)
    order = np.argsort(first, kind="stable").astype(np.int64)
    return refine_ties(arena, offsets, order, first)


def build_trie_arrays(arena: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64],
                      ids: npt.NDArray[np.int32], *, reverse: bool = False) -> Trie:
    """:func:`build_trie` of pieces held in arrays (``arena``/``offsets``), optionally of each
    piece's bytes reversed; for millions of pieces it needs no Python object per piece."""
    from .runs import gather_pieces, reverse_pieces
    from .trie_build import build_double_array

    lengths = np.diff(offsets)
    if reverse:
        arena = reverse_pieces(arena, offsets)
    order = lexicographic_order(arena, offsets)
    _, _, sorted_offsets, sorted_arena = gather_pieces(order, np.zeros(len(order), np.uint64),
                                                       np.zeros(len(order), np.int64), offsets[:-1], lengths, arena)
    base_check, piece = build_double_array(sorted_arena, sorted_offsets, np.ascontiguousarray(ids[order]))
    return Trie(base_check, piece, int(lengths.max()) if len(lengths) else 0)
