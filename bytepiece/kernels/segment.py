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


@njit(cache=True, nogil=True, error_model="numpy")
def resegment_sorted(bc, pair, piece, logp, arena, offsets, weights, counter):
    """Segment every piece ``arena[offsets[i]:offsets[i+1]]`` with the tokenizer whose
    *reversed* pieces are in the trie ``bc`` (``pair``: its first two steps, see
    ``Trie.pair_cells``; ``logp[cell]``: log probability, -inf for pieces left out) and add
    ``weights[i]`` to ``counter[id]`` of every part.

    The Viterbi pulls (at each end position it walks back over the text, shortest piece first,
    and ``>=`` keeps the longest on a tie: the tokenizer's rule), so ``best[e]`` depends only on
    the first e bytes. A piece therefore reuses the work of the previous one up to their common
    prefix: on pieces in sorted order a third or more of all positions are never recomputed, and
    the walks of neighbours share trie paths that stay in cache.

    Written as the encoder's Viterbi is (``kernels.forward``, whose docstring has the
    measurements): unsigned indices, a loop from a constant start, ``error_model="numpy"``;
    together 1.15x on the dropped pieces of the Linux sources. The trie must keep every base
    256 cells inside its arrays, which ``training.pruning.PieceSet`` checks."""
    n_pieces = offsets.shape[0] - 1
    longest = 1
    for i in range(n_pieces):
        longest = max(longest, offsets[i + 1] - offsets[i])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    base0 = bc[0]
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
        for e in range(1, n + 1):
            if e <= lcp:
                continue
            c = np.int64(arena[np.uint64(a + e - 1)])
            node = base0 + c
            top = best[e - 1] + logp[np.uint64(node)]
            start = e - 1
            cell = node
            if e >= 2:
                node = pair[(c << 8) | np.int64(arena[np.uint64(a + e - 2)])]
                if node >= 0:
                    v = best[e - 2] + logp[np.uint64(node)]
                    if v >= top:
                        top = v
                        start = e - 2
                        cell = node
                    for s in range(e - 3, -1, -1):
                        nxt = bc[np.uint64(2 * node)] + arena[np.uint64(a + s)]
                        if bc[np.uint64(2 * nxt + 1)] != node:
                            break
                        node = nxt
                        v = best[s] + logp[np.uint64(node)]
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
