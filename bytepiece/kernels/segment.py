"""Unigram Viterbi on raw bytes (no normalization, no chunking), as the trainer's pruning and
refinement need it: ``best_segmentation`` pushes forward over a *forward* double-array trie
(``bytepiece.kernels.trie``); ``resegment_sorted`` pulls over a trie of reversed pieces and
shares work between consecutive pieces.

Candidates for an end position arrive longest first (starts increase) and only a strictly
better score replaces the best, so ties keep the longest last piece: the original's rule
(DESIGN section 3). ``logp[cell]`` is the log probability of the piece ending at the cell and
-inf where none ends, or where a piece is to be left out (that is how a subset of the trie's
pieces acts as a tokenizer of its own).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._jit import njit


@njit(cache=True, nogil=True)
def best_segmentation(bc, piece, logp, text, a, n, skip_whole, best, back, tok):
    """Viterbi over ``text[a:a+n]`` (pushing forward from each start): ``best[e]``, ``back[e]``
    (start) and ``tok[e]`` (piece id) for e in 1..n. Ties keep the longest last piece, as the
    tokenizer does. ``skip_whole`` leaves out the candidate spanning all n bytes."""
    best[0] = 0.0
    for e in range(1, n + 1):
        best[e] = -np.inf
    for s in range(n):
        bs = best[s]
        node = 0
        for e in range(s + 1, n + 1):
            nxt = bc[2 * node] + text[a + e - 1]
            if bc[2 * nxt + 1] != node:
                break
            node = nxt
            if skip_whole and s == 0 and e == n:
                continue
            v = bs + logp[node]
            if v > best[e]:
                best[e] = v
                back[e] = s
                tok[e] = piece[node]


#: the check half of a packed cell (see :func:`packed_cells`)
_CHECK = np.int64(0xFFFFFFFF)


def packed_cells(base_check: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
    """A double array's cells as ``resegment_sorted`` reads them: two int64 per cell, the first
    ``base << 32 | check`` (check as unsigned 32 bits, so an empty cell's -1 matches no
    parent), the second the cell's score as float64 bits (:func:`set_cell_scores`). A step of a
    walk reads one 16-byte record where the plain layout reads the double array and a separate
    score array, two cache misses on a trie of millions of pieces."""
    base = base_check[0::2]  # views: the trie of pruning has tens of millions of cells
    if len(base) and (base.min() < 0 or int(base.max()) + 256 > len(base)):
        # resegment_sorted does not check its indices: a base must leave room for any byte
        raise ValueError("a base of the trie lies outside its arrays")
    cells = np.empty(len(base_check), np.int64)
    _pack(base_check, cells)
    return cells


@njit(cache=True, nogil=True)
def _pack(base_check, cells):
    """The records of :func:`packed_cells`, scores 0 (a loop: no temporary arrays)."""
    for i in range(base_check.shape[0] // 2):
        cells[2 * i] = (np.int64(base_check[2 * i]) << 32) | (np.int64(base_check[2 * i + 1]) & _CHECK)
        cells[2 * i + 1] = 0


def set_cell_scores(cells: npt.NDArray[np.int64], terminal: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> None:
    """Score ``scores[i]`` at the cell ``terminal[i]`` of ``cells``, and -inf at every other cell
    (no piece ends there)."""
    view = cells.view(np.float64)[1::2]
    view.fill(-np.inf)
    view[terminal] = scores


@njit(cache=True, nogil=True, error_model="numpy")
def resegment_sorted(cells, scores, pair, piece, arena, offsets, weights, counter):
    """Segment every piece ``arena[offsets[i]:offsets[i+1]]`` with the tokenizer whose
    *reversed* pieces are in the trie of ``cells`` (:func:`packed_cells`, whose scores are the
    log probabilities, -inf for pieces left out; ``pair``: its first two steps, see
    ``Trie.pair_cells``) and add ``weights[i]`` to ``counter[id]`` of every part. ``scores`` is
    ``cells.view(np.float64)``, made by the caller: the view inside the kernel cost 0.3 s of
    compiling on a first run.

    The Viterbi pulls (at each end position it walks back over the text, shortest piece first,
    and ``>=`` keeps the longest on a tie: the tokenizer's rule), so ``best[e]`` depends only on
    the first e bytes. A piece therefore reuses the work of the previous one up to their common
    prefix: on pieces in sorted order a third or more of all positions are never recomputed, and
    the walks of neighbours share trie paths that stay in cache.

    Written as the encoder's Viterbi is (``kernels.forward``, whose docstring has the
    measurements): unsigned indices, a loop from a constant start, ``error_model="numpy"``:
    1.15x on the dropped pieces of the Linux sources; the packed cells another 1.1x."""
    n_pieces = offsets.shape[0] - 1
    longest = 1
    for i in range(n_pieces):
        longest = max(longest, offsets[i + 1] - offsets[i])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    base0 = cells[0] >> 32
    prev_a = 0
    prev_n = 0
    best[0] = 0.0
    for p in range(n_pieces):
        a = offsets[p]
        n = offsets[p + 1] - a
        lcp = 0
        limit = min(n, prev_n)
        while lcp < limit and arena[np.uint64(a + lcp)] == arena[np.uint64(prev_a + lcp)]:
            lcp += 1
        for e in range(1, n + 1):  # a constant start: see kernels.forward
            if e <= lcp:
                continue
            c = np.int64(arena[np.uint64(a + e - 1)])
            node = base0 + c
            top = best[e - 1] + scores[np.uint64(2 * node + 1)]
            start = e - 1
            cell = node
            if e >= 2:
                node = np.int64(pair[(c << 8) | np.int64(arena[np.uint64(a + e - 2)])])
                if node >= 0:
                    record = cells[np.uint64(2 * node)]
                    v = best[e - 2] + scores[np.uint64(2 * node + 1)]
                    if v >= top:
                        top = v
                        start = e - 2
                        cell = node
                    for s in range(e - 3, -1, -1):
                        nxt = (record >> 32) + arena[np.uint64(a + s)]
                        record = cells[np.uint64(2 * nxt)]
                        if (record & _CHECK) != node:
                            break
                        node = nxt
                        v = best[s] + scores[np.uint64(2 * node + 1)]
                        if v >= top:
                            top = v
                            start = s
                            cell = node
            best[e] = top
            back[e] = start
            tok[e] = cell
        w = weights[p]
        j = n
        while j > 0:
            counter[np.uint64(piece[np.uint64(tok[j])])] += w
            j = back[j]
        prev_a = a
        prev_n = n
