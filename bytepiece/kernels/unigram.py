"""Kernels for the optional vocabulary refinement: unigram-LM statistics over a piece lattice.

All kernels walk a *forward* double-array trie (``bytepiece.kernels.trie``): from a start
position ``s`` the walk over ``text[s], text[s+1], ...`` visits every piece that starts at ``s``
(shortest first). Per-cell arrays hold the value of the piece ending at the cell (probability,
log probability) and ``piece[cell]`` its id (-1 where no piece ends).

Expected counts (forward-backward) run in the linear domain without any ``exp``: with
``beta[s]`` the total probability of all segmentations of ``text[s:]`` (``beta[n] = 1``), the
backward pass stores ``inv[s] = beta[s+1] / beta[s]``; a ratio ``beta[e] / beta[s]`` is then a
product of ``inv`` along the walk from ``s``. The forward pass pushes posterior boundary mass
``g[s]`` (the probability that a piece starts at ``s``; ``g[0] = 1``) along the same walks:
the posterior of piece ``text[s:e]`` is ``g[s] * p * beta[e] / beta[s]``. The log likelihood
of the chunk is ``-sum(log inv)``. Ratios stay within float64 range because they only span
prefixes of pieces (at most ``max_piece_length`` bytes) and every single byte is a piece.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .segment import best_segmentation


@njit(cache=True, nogil=True)
def _longest_chunk(bounds, lo, hi):
    longest = 0
    for k in range(lo, hi):
        longest = max(longest, bounds[k + 1] - bounds[k])
    return longest


@njit(cache=True, nogil=True)
def expected_counts(bc, piece, prob, buf, bounds, lo, hi, counts):
    """Add the expected count of every piece in chunks ``lo..hi-1`` (``buf[bounds[k]:bounds[k+1]]``)
    to ``counts`` (float64, by piece id); return the total log likelihood of those chunks.
    ``prob[cell]`` is the probability of the piece ending at the cell (0 where none ends)."""
    longest = _longest_chunk(bounds, lo, hi)
    inv = np.empty(longest + 1, np.float64)
    g = np.empty(longest + 1, np.float64)
    loglik = 0.0
    for k in range(lo, hi):
        a = bounds[k]
        n = bounds[k + 1] - a
        if n == 0:
            continue
        # Backward: inv[s] = beta[s+1] / beta[s].
        inv[n] = 1.0
        for s in range(n - 1, -1, -1):
            acc = 0.0
            r = 1.0  # beta[e] / beta[s+1] for the current e
            node = 0
            for e in range(s + 1, n + 1):
                nxt = bc[2 * node] + buf[a + e - 1]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
                acc += prob[node] * r
                r *= inv[e]
            inv[s] = 1.0 / acc
            loglik -= np.log(inv[s])
        # Forward: push boundary posteriors.
        for s in range(n + 1):
            g[s] = 0.0
        g[0] = 1.0
        for s in range(n):
            gs = g[s]
            if gs == 0.0:
                continue
            r = gs * inv[s]  # g[s] * beta[e] / beta[s] for the current e
            node = 0
            for e in range(s + 1, n + 1):
                nxt = bc[2 * node] + buf[a + e - 1]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
                pid = piece[node]
                if pid >= 0:
                    post = prob[node] * r
                    counts[pid] += post
                    g[e] += post
                r *= inv[e]
    return loglik


@njit(cache=True, nogil=True)
def viterbi_counts(bc, piece, logp, buf, bounds, lo, hi, counts):
    """Add the Viterbi (best segmentation) count of every piece in chunks ``lo..hi-1`` to
    ``counts`` (float64, by id); return the total log probability of the best segmentations.
    ``logp[cell]`` is the log probability of the piece ending at the cell (-inf where none).
    Ties keep the longest last piece, as the tokenizer does."""
    longest = _longest_chunk(bounds, lo, hi)
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int64)
    tok = np.empty(longest + 1, np.int32)
    total = 0.0
    for k in range(lo, hi):
        a = bounds[k]
        n = bounds[k + 1] - a
        if n == 0:
            continue
        best_segmentation(bc, piece, logp, buf, a, n, False, best, back, tok)
        total += best[n]
        e = n
        while e > 0:
            counts[tok[e]] += 1.0
            e = back[e]
    return total


@njit(cache=True, nogil=True)
def removal_loss(bc, piece, logp, counts, arena, starts, lengths):
    """For every piece ``i`` (bytes ``arena[starts[i]:starts[i]+lengths[i]]``, id ``i``), the loss
    of total log likelihood when it is removed and its ``counts[i]`` occurrences are segmented by
    the best segmentation of its bytes that does not use it (the Unigram LM pruning estimate,
    with the probabilities renormalised for the moved counts). Single bytes get +inf (kept).
    ``logp`` is per cell, built from the same ``counts``."""
    n_pieces = starts.shape[0]
    total = 0.0
    for i in range(n_pieces):
        total += counts[i]
    log_total = np.log(total)
    loss = np.empty(n_pieces, np.float64)
    longest = 1
    for i in range(n_pieces):
        longest = max(longest, lengths[i])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int64)
    tok = np.empty(longest + 1, np.int32)
    for i in range(n_pieces):
        n = lengths[i]
        c = counts[i]
        if n <= 1:
            loss[i] = np.inf
            continue
        if c <= 0.0:
            loss[i] = 0.0
            continue
        a = starts[i]
        best_segmentation(bc, piece, logp, arena, a, n, True, best, back, tok)  # without the piece itself
        # The alternative's pieces each gain c occurrences; the total gains c * (parts - 1).
        parts = 0
        e = n
        while e > 0:
            parts += 1
            e = back[e]
        log_new_total = np.log(total + c * (parts - 1))
        alt = 0.0
        e = n
        while e > 0:
            alt += np.log(counts[tok[e]] + c) - log_new_total
            e = back[e]
        loss[i] = c * ((np.log(c) - log_total) - alt)
    return loss


@njit(cache=True, nogil=True)
def viterbi_pairs(bc, piece, logp, buf, bounds, lo, hi, n_ids):
    """Keys ``a * n_ids + b`` (int64) of every pair of adjacent pieces ``a b`` in the best
    segmentations of chunks ``lo..hi-1`` (pairs never cross a chunk boundary), in text order."""
    longest = _longest_chunk(bounds, lo, hi)
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int64)
    tok = np.empty(longest + 1, np.int32)
    out = np.empty(bounds[hi] - bounds[lo], np.int64)
    m = 0
    for k in range(lo, hi):
        a = bounds[k]
        n = bounds[k + 1] - a
        if n == 0:
            continue
        best_segmentation(bc, piece, logp, buf, a, n, False, best, back, tok)
        e = n
        right = -1
        while e > 0:
            left = tok[e]
            if right >= 0:
                out[m] = np.int64(left) * n_ids + right
                m += 1
            right = left
            e = back[e]
    return out[:m].copy()
