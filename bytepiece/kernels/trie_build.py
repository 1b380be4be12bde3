"""Construction kernels of the double-array trie (layout: ``bytepiece.kernels.trie``)."""

from __future__ import annotations

import numpy as np
from ._jit import njit

ROOT = 0


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
    """(base_check, piece) of the double array of lexicographically sorted pieces.

    Built breadth-first straight from the sorted pieces: a node at depth d is the range of
    pieces sharing its d-byte prefix (the one of length d, if any, comes first and ends there),
    and its children are the runs of equal byte d inside that range. So the only memory besides
    the cells is the list of ranges of one level, not a pointer trie of every node (which took
    36 bytes per byte of the pieces)."""
    n_pieces = offsets.shape[0] - 1
    # Bases are placed at the first fit, so the array stays nearly dense (one cell per node plus
    # the 256 a base may reach past the last); it grows if holes say otherwise.
    cap = max(1024, buf.shape[0] // 2 + 2 * 256 + 1)
    base_of = np.zeros(cap, np.int32)
    check = np.full(cap, -1, np.int32)
    piece_of = np.full(cap, -1, np.int32)
    skip = np.arange(cap + 1).astype(np.int32)  # skip[cap] == cap is a sentinel "free" cell
    skip[ROOT] = ROOT + 1
    # Ranges of the current and the next level: [lo, hi) of the sorted pieces, and the cell.
    cur = np.empty((max(1, n_pieces), 3), np.int64)
    nxt = np.empty((max(1, n_pieces), 3), np.int64)
    n_cur = 1
    cur[0, 0], cur[0, 1], cur[0, 2] = 0, n_pieces, ROOT
    labels = np.zeros(256, np.int64)
    starts = np.zeros(257, np.int64)
    top = 1  # one past the highest used cell
    depth = 0
    while n_cur > 0:
        n_next = 0
        for q in range(n_cur):
            lo, hi, parent_cell = cur[q, 0], cur[q, 1], cur[q, 2]
            i = lo
            if i < hi and offsets[i + 1] - offsets[i] == depth:
                i += 1  # the piece that ends at this node
            k = 0
            while i < hi:
                c = buf[offsets[i] + depth]
                labels[k] = c
                starts[k] = i
                k += 1
                i += 1
                while i < hi and buf[offsets[i] + depth] == c:
                    i += 1
            starts[k] = hi
            if k == 0:
                continue
            # Every cell from `top` on is free, so the search below stops at p <= max(top, 256)
            # and touches cells below p + 256: make sure they exist.
            if max(top, 256) + 257 > cap:
                new_cap = 2 * cap
                base_of = _grown(base_of, new_cap, 0)
                check = _grown(check, new_cap, -1)
                piece_of = _grown(piece_of, new_cap, -1)
                grown_skip = np.arange(new_cap + 1).astype(np.int32)
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
            base_of[parent_cell] = base
            for j in range(k):
                c = base + labels[j]
                skip[c] = c + 1
                check[c] = parent_cell
                first = starts[j]
                if offsets[first + 1] - offsets[first] == depth + 1:
                    piece_of[c] = ids[first]
                if c + 1 > top:
                    top = c + 1
                nxt[n_next, 0], nxt[n_next, 1], nxt[n_next, 2] = first, starts[j + 1], c
                n_next += 1
        cur, nxt = nxt, cur
        n_cur = n_next
        depth += 1
    # Room for base + 255 of any cell, so a lookup never needs a bounds check.
    size = top + 256
    for i in range(top):
        if base_of[i] + 256 > size:
            size = base_of[i] + 256
    base_check = np.empty(2 * size, np.int32)
    for i in range(size):
        base_check[2 * i] = base_of[i]
        base_check[2 * i + 1] = check[i]
    return base_check, piece_of[:size].copy()
