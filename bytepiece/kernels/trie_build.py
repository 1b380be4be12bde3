"""Construction kernels of the double-array trie (layout: ``bytepiece.kernels.trie``)."""

from __future__ import annotations

import numpy as np
from ._jit import njit

BASE, CHECK, PIECE = 0, 1, 2
ROOT = 0


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
def build_double_array(buf, offsets, ids):
    """(n_cells, 3) int32 rows of base, check, piece id for lexicographically sorted pieces."""
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
