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

    def pair_cells(self) -> npt.NDArray[np.int32]:
        """``out[(c1 << 8) | c2]``: the cell reached from the root by bytes c1 then c2, or -1.

        One load from a 256 KB table replaces the first two dependent steps of a walk (the
        hottest ones: every walk takes them). Meant for tries in which every single byte is a
        key, so the first step never fails."""
        bc = self.base_check.astype(np.int64)
        first = bc[0] + np.arange(256)
        second = bc[2 * first][:, None] + np.arange(256)[None, :]
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
    if ids is None:
        ids = np.arange(len(pieces), dtype=np.int32)
    order = sorted(range(len(pieces)), key=pieces.__getitem__)
    sorted_pieces = [pieces[i] for i in order]
    lengths = np.fromiter(map(len, sorted_pieces), dtype=np.int64, count=len(pieces))
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
def _next_free(skip, i):
    """Smallest free cell >= i. ``skip[j]`` is j for a free cell, otherwise a cell to jump to
    (union-find "next free" with path halving), so scans never step over runs of used cells."""
    while skip[i] != i:
        skip[i] = skip[skip[i]]
        i = skip[i]
    return i


@njit(cache=True, nogil=True)
def _grown(a, n, fill):
    out = np.full(n, fill, a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def _build_double_array(buf, offsets, ids):
    first_child, next_sibling, label, piece = _build_pointer_trie(buf, offsets, ids)
    n_nodes = first_child.shape[0]
    # Bases are placed at the first fit, so the array stays nearly dense (for real vocabularies
    # n_nodes cells plus the 256 a base may reach past the last); it grows if holes say otherwise.
    cap = n_nodes + 2 * 256 + 1
    base_of = np.zeros(cap, np.int32)
    check = np.full(cap, -1, np.int32)
    piece_of = np.full(cap, -1, np.int32)
    skip = np.arange(cap + 1).astype(np.int64)  # skip[cap] == cap is a sentinel "free" cell
    skip[ROOT] = ROOT + 1
    cell_of = np.zeros(n_nodes, np.int64)  # pointer node -> cell
    queue = np.zeros(n_nodes, np.int64)
    head, tail = 0, 1
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
        # Every cell from `top` on is free, so the search below stops at p <= max(top, 256) and
        # touches cells below p + 256: make sure they exist (holes can push past the estimate).
        if max(top, 256) + 257 > cap:
            new_cap = 2 * cap
            base_of = _grown(base_of, new_cap, 0)
            check = _grown(check, new_cap, -1)
            piece_of = _grown(piece_of, new_cap, -1)
            grown_skip = np.arange(new_cap + 1).astype(np.int64)
            grown_skip[:cap] = skip[:cap]
            skip = grown_skip
            cap = new_cap
        # Smallest base >= 1 - labels[0] whose k target cells are all free, visiting free cells only.
        p = _next_free(skip, max(1, labels[0] + 1))
        while True:
            base = p - labels[0]
            ok = True
            for j in range(1, k):
                if skip[base + labels[j]] != base + labels[j]:
                    ok = False
                    break
            if ok:
                break
            p = _next_free(skip, p + 1)
        parent_cell = cell_of[node]
        base_of[parent_cell] = base
        child = first_child[node]
        while child >= 0:
            c = base + label[child]
            skip[c] = c + 1
            check[c] = parent_cell
            piece_of[c] = piece[child]
            cell_of[child] = c
            if c + 1 > top:
                top = c + 1
            queue[tail] = child
            tail += 1
            child = next_sibling[child]
    # Room for base + 255 of any cell, so a lookup never needs a bounds check.
    size = top + 256
    for i in range(top):
        if base_of[i] + 256 > size:
            size = base_of[i] + 256
    cells = np.empty((size, 3), np.int32)
    cells[:, BASE] = base_of[:size]
    cells[:, CHECK] = check[:size]
    cells[:, PIECE] = piece_of[:size]
    return cells
