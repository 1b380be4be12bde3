"""Unigram Viterbi over a *forward* double-array trie (``bytepiece.kernels.trie``), pushing from
each start: the segmentation the trainer's pruning and refinement use on raw bytes (no
normalization, no chunking).

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


@njit(cache=True, nogil=True)
def resegment(bc, piece, logp, arena, starts, lengths, which, weights, counter):
    """Segment pieces ``which[k]`` (bytes ``arena[starts[i]:starts[i]+lengths[i]]``) and add
    ``weights[k]`` to ``counter[id]`` for every part; return how many came out whole."""
    longest = 1
    for k in range(which.shape[0]):
        longest = max(longest, lengths[which[k]])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int64)
    tok = np.empty(longest + 1, np.int32)
    whole = 0
    for k in range(which.shape[0]):
        i = which[k]
        n = lengths[i]
        best_segmentation(bc, piece, logp, arena, starts[i], n, False, best, back, tok)
        if back[n] == 0:
            whole += 1
        w = weights[k]
        j = n
        while j > 0:
            counter[tok[j]] += w
            j = back[j]
    return whole
