"""A double-array trie over byte pieces, built and stored as flat numpy arrays.

Layout: ``base_check`` interleaves int32 pairs, ``[base(0), check(0), base(1), check(1), ...]``
(flat, so a kernel indexes ``2 * n`` without stride arithmetic). The child of cell ``n`` on byte
``c`` is ``m = base_check[2 * n] + c`` and exists iff ``base_check[2 * m + 1] == n``; ``piece[m]`` is
the id of the piece spelled by the path to ``m`` (or -1). Only ``base_check`` lies on the chain
of dependent loads that decides the speed of a walk, so it is kept as small as possible (8 bytes
a cell: the tries of 80k-160k vocabularies fit in L2); per-cell values the Viterbi needs (scores,
sampling weights) live in separate arrays that the CPU can load off the critical path. Cells are
assigned breadth-first, so short prefixes (the hot part of every walk) sit together at the start.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

BASE, CHECK, PIECE = 0, 1, 2
ROOT = 0


class Trie(NamedTuple):
    base_check: npt.NDArray[np.int32]  # (2 * n_cells,) interleaved base, check
    piece: npt.NDArray[np.int32]  # (n_cells,) piece id ending at the cell, or -1
    max_depth: int

    def cell_values(self, values_by_id: npt.NDArray[np.float64], missing: float) -> npt.NDArray[np.float64]:
        """Per-cell copy of a per-id array (``missing`` where no piece ends), as the kernels take it."""
        out = np.full(len(self.piece), missing, dtype=np.float64)
        terminal = self.piece >= 0
        out[terminal] = values_by_id[self.piece[terminal]]
        return out


def build_trie(pieces: list[bytes], ids: npt.NDArray[np.int32] | None = None) -> Trie:
    """Build the double-array trie of ``pieces``; ``ids[i]`` is the id stored for ``pieces[i]``."""
    if ids is None:
        ids = np.arange(len(pieces), dtype=np.int32)
    order = sorted(range(len(pieces)), key=pieces.__getitem__)
    sorted_pieces = [pieces[i] for i in order]
    lengths = np.fromiter((len(p) for p in sorted_pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(sorted_pieces), dtype=np.uint8)
    sorted_ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int32)[np.array(order, dtype=np.int64)])
    cells = _build_double_array(buf, offsets, sorted_ids)
    return Trie(np.ascontiguousarray(cells[:, :2]).reshape(-1), np.ascontiguousarray(cells[:, PIECE]), int(lengths.max()) if len(lengths) else 0)


@njit(cache=True, nogil=True)
def _build_pointer_trie(buf, offsets, ids):
    """First-child/next-sibling trie from lexicographically sorted pieces (children come sorted)."""
    n_pieces = offsets.shape[0] - 1
    cap = buf.shape[0] + 1
    first_child = np.full(cap, -1, np.int64)
    last_child = np.full(cap, -1, np.int64)
    next_sibling = np.full(cap, -1, np.int64)
    label = np.zeros(cap, np.int64)
    piece = np.full(cap, -1, np.int32)
    n_nodes = 1
    path = np.zeros(2, np.int64)
    for i in range(n_pieces):
        a, b = offsets[i], offsets[i + 1]
        if b - a + 1 > path.shape[0]:
            grown = np.zeros(2 * (b - a + 1), np.int64)
            grown[: path.shape[0]] = path
            path = grown
        # Longest common prefix with the previous piece: those nodes already exist.
        lcp = 0
        if i > 0:
            pa, pb = offsets[i - 1], offsets[i]
            while lcp < pb - pa and lcp < b - a and buf[pa + lcp] == buf[a + lcp]:
                lcp += 1
        for d in range(lcp, b - a):
            parent = path[d]
            node = n_nodes
            n_nodes += 1
            label[node] = buf[a + d]
            if last_child[parent] < 0:
                first_child[parent] = node
            else:
                next_sibling[last_child[parent]] = node
            last_child[parent] = node
            path[d + 1] = node
        piece[path[b - a]] = ids[i]
    return first_child[:n_nodes], next_sibling[:n_nodes], label[:n_nodes], piece[:n_nodes]


@njit(cache=True, nogil=True)
def _build_double_array(buf, offsets, ids):
    first_child, next_sibling, label, piece = _build_pointer_trie(buf, offsets, ids)
    n_nodes = first_child.shape[0]
    cap = 2 * n_nodes + 512
    cells = np.zeros((cap, 4), np.int32)
    cells[:, CHECK] = -1
    cells[:, PIECE] = -1
    used = np.zeros(cap, np.bool_)
    used[ROOT] = True
    cell_of = np.zeros(n_nodes, np.int64)  # pointer node -> cell
    queue = np.zeros(n_nodes, np.int64)
    head, tail = 0, 1
    queue[0] = 0
    first_free = 1
    labels = np.zeros(256, np.int64)
    top = 1  # one past the highest used cell
    while head < tail:
        node = queue[head]
        head += 1
        k = 0
        child = first_child[node]
        while child >= 0:
            labels[k] = label[child]
            k += 1
            child = next_sibling[child]
        if k == 0:
            continue
        while first_free < cap and used[first_free]:
            first_free += 1
        # Smallest base whose k target cells are all free; scanning free cells from first_free.
        p = first_free
        while True:
            if p + 256 >= cap:
                new_cap = 2 * cap
                grown = np.zeros((new_cap, 4), np.int32)
                grown[:, CHECK] = -1
                grown[:, PIECE] = -1
                grown[:cap] = cells
                cells = grown
                grown_used = np.zeros(new_cap, np.bool_)
                grown_used[:cap] = used
                used = grown_used
                cap = new_cap
            if not used[p] and p - labels[0] >= 1:
                base = p - labels[0]
                ok = True
                for j in range(1, k):
                    if used[base + labels[j]]:
                        ok = False
                        break
                if ok:
                    break
            p += 1
        parent_cell = cell_of[node]
        cells[parent_cell, BASE] = base
        child = first_child[node]
        while child >= 0:
            c = base + label[child]
            used[c] = True
            cells[c, CHECK] = parent_cell
            cells[c, PIECE] = piece[child]
            cell_of[child] = c
            if c + 1 > top:
                top = c + 1
            queue[tail] = child
            tail += 1
            child = next_sibling[child]
    # Room for base + 255 of any cell, so a lookup never needs a bounds check.
    size = top + 256
    if size > cap:
        grown = np.zeros((size, 4), np.int32)
        grown[:, CHECK] = -1
        grown[:, PIECE] = -1
        grown[:cap] = cells
        cells = grown
    max_base = 0
    for i in range(top):
        if cells[i, BASE] > max_base:
            max_base = cells[i, BASE]
    size = max(size, max_base + 256)
    if size > cells.shape[0]:
        grown = np.zeros((size, 4), np.int32)
        grown[:, CHECK] = -1
        grown[:, PIECE] = -1
        grown[: cells.shape[0]] = cells
        cells = grown
    return cells[:size].copy()
