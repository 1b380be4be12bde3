"""Construction kernels of the double-array trie (layout: ``bytepiece.kernels.trie``).

Every model load without a cached entry compiles these on a first run, so they use only
``np.empty`` of one dimension and loops (see :mod:`.copying`): each other numpy constructor or
builtin is one more implementation for numba to compile."""

from __future__ import annotations

import numpy as np
from ._jit import njit
from .copying import fill, grown_copy

ROOT = 0
#: A free cell that was tried as the first child's cell of this many nodes with several
#: children, and failed each time, is no longer tried for such nodes (it stays free for a node
#: with one child). Without this bound every placement scanned all the holes before the first fit,
#: quadratic on vocabularies of random bytes (1M pieces: two minutes).
RETIRE_AFTER = 8


@njit(cache=True, nogil=True, inline="always")
def _next_free(skip, i):
    """Smallest free cell >= i. ``skip[j]`` is j for a free cell, otherwise a cell to jump to
    (union-find "next free" with path halving), so scans never step over runs of used cells."""
    while skip[i] != i:
        skip[i] = skip[skip[i]]
        i = skip[i]
    return i


@njit(cache=True, nogil=True, inline="always")
def _grown(a, n, value):
    """``a`` grown to ``n`` entries, the new ones ``value``."""
    out = grown_copy(a, a.shape[0], n)
    fill(out, a.shape[0], n, value)
    return out


@njit(cache=True, nogil=True)
def build_double_array(buf, offsets, ids):  # noqa: C901 - the double-array construction: one loop over trie nodes is the algorithm
    """(base_check, piece) of the double array of lexicographically sorted pieces.

    Built breadth-first straight from the sorted pieces: a node at depth d is the range of
    pieces sharing its d-byte prefix (the one of length d, if any, comes first and ends there),
    and its children are the runs of equal byte d inside that range. So the only memory besides
    the cells is the list of ranges of one level, not a pointer trie of every node (which took
    36 bytes per byte of the pieces).

    Placement is first fit, over two "next free cell" structures: ``skip`` (every free cell) for
    a node with one child, which so fills the holes, and ``scan`` (free cells not yet retired,
    see ``RETIRE_AFTER``) for the first child of a node with several. A cell fails as such at most
    ``RETIRE_AFTER`` times, so the search costs O(RETIRE_AFTER * cells) in all: linear in the
    bytes of the pieces."""
    n_pieces = offsets.shape[0] - 1
    # Bases are placed at the first fit, so the array stays nearly dense: one cell per node (the
    # distinct prefixes, counted first) plus some holes and the 256 a base may reach past the
    # last. It grows by a quarter if the holes say otherwise.
    n_nodes = 1
    for i in range(n_pieces):
        a, b = offsets[i], offsets[i + 1]
        lcp = 0
        if i > 0:
            pa, pb = offsets[i - 1], offsets[i]
            while lcp < pb - pa and lcp < b - a and buf[pa + lcp] == buf[a + lcp]:
                lcp += 1
        n_nodes += b - a - lcp
    cap = n_nodes + n_nodes // 16 + 4 * 256 + 1
    bc = np.empty(2 * cap, np.int32)  # interleaved base, check: the result itself, never copied
    _fill_cells(bc, 0, cap)
    piece_of = np.empty(cap, np.int32)
    fill(piece_of, 0, cap, -1)
    skip = np.empty(cap + 1, np.int32)  # skip[cap] == cap is a sentinel "free" cell
    _fill_free(skip, 0, cap + 1)
    skip[ROOT] = ROOT + 1
    scan = grown_copy(skip, cap + 1, cap + 1)
    fails = np.empty(cap, np.uint8)
    fill(fails, 0, cap, 0)
    # Ranges of the current and the next level, three int32 each: [lo, hi) of the sorted pieces, and the cell.
    cur = np.empty(3 * n_pieces + 3, np.int32)
    nxt = np.empty(3 * n_pieces + 3, np.int32)
    n_cur = 1
    cur[0], cur[1], cur[2] = 0, n_pieces, ROOT
    labels = np.empty(256, np.int64)
    starts = np.empty(257, np.int64)
    top = 1  # one past the highest used cell
    depth = 0
    while n_cur > 0:
        n_next = 0
        for q in range(n_cur):
            lo, hi, parent_cell = cur[3 * q], cur[3 * q + 1], cur[3 * q + 2]
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
                new_cap = cap + cap // 4 + 512
                bc = grown_copy(bc, 2 * cap, 2 * new_cap)
                _fill_cells(bc, cap, new_cap)
                piece_of = _grown(piece_of, new_cap, -1)
                skip = _grown_free(skip, cap, new_cap)
                scan = _grown_free(scan, cap, new_cap)
                fails = _grown(fails, new_cap, 0)
                cap = new_cap
            # A base >= 1 - labels[0] whose k target cells are all free: the first fit, visiting free cells only.
            if k == 1:
                base = _next_free(skip, max(1, labels[0] + 1)) - labels[0]
            else:
                base = _place(skip, scan, fails, labels, k)
            bc[2 * parent_cell] = base
            for j in range(k):
                c = base + labels[j]
                skip[c] = c + 1
                scan[c] = c + 1
                bc[2 * c + 1] = parent_cell
                first = starts[j]
                if offsets[first + 1] - offsets[first] == depth + 1:
                    piece_of[c] = ids[first]
                if c + 1 > top:
                    top = c + 1
                nxt[3 * n_next], nxt[3 * n_next + 1], nxt[3 * n_next + 2] = first, starts[j + 1], c
                n_next += 1
        cur, nxt = nxt, cur
        n_cur = n_next
        depth += 1
    # Room for base + 255 of any cell, so a lookup never needs a bounds check.
    size = top + 256
    for i in range(top):
        if bc[2 * i] + 256 > size:
            size = bc[2 * i] + 256
    return bc[: 2 * size], piece_of[:size]


@njit(cache=True, nogil=True, inline="always")
def _place(skip, scan, fails, labels, k):
    """First-fit base for children ``labels[:k]`` (k >= 2, ascending), trying as the first
    child's cell only free cells not yet retired; a cell that fails ``RETIRE_AFTER`` times is
    retired. Cells from the highest used one on are all free and never retired, so this ends."""
    p = _next_free(scan, max(1, labels[0] + 1))
    while True:
        base = p - labels[0]
        ok = True
        for j in range(1, k):
            if skip[base + labels[j]] != base + labels[j]:
                ok = False
                break
        if ok:
            return base
        fails[p] += 1
        if fails[p] >= RETIRE_AFTER:
            scan[p] = p + 1
        p = _next_free(scan, p + 1)


@njit(cache=True, nogil=True, inline="always")
def _grown_free(skip, cap, new_cap):
    """``skip`` (``cap + 1`` entries, the last a sentinel) grown to ``new_cap + 1``: the new
    cells free."""
    out = grown_copy(skip, cap, new_cap + 1)
    _fill_free(out, cap, new_cap + 1)
    return out


@njit(cache=True, nogil=True, inline="always")
def _fill_cells(bc, lo, hi):
    """Cells lo..hi-1 empty: base 0, check -1 (no parent)."""
    for i in range(lo, hi):
        bc[2 * i] = 0
        bc[2 * i + 1] = -1


@njit(cache=True, nogil=True, inline="always")
def _fill_free(skip, lo, hi):
    """Cells lo..hi-1 free (``skip[i] == i``), written in place: ``np.arange`` would first make
    an int64 copy as large as the whole double array."""
    for i in range(lo, hi):
        skip[i] = i
