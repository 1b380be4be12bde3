"""Interpolated modified Kneser-Ney n-gram model over token ids: counting and queries.

Storage is a flat prefix tree of all seen n-grams, one *entry* per distinct n-gram:

* entry 0 is the root (the empty context); entries ``1 .. V`` are the unigrams, entry
  ``1 + w`` for token ``w`` (dense, seen or not); then every distinct bigram, trigram, ... in
  level order. Within a level, entries are sorted by (parent entry, last token), so the
  children of entry ``e`` (its one-token extensions) are the contiguous range
  ``child_start[e] .. child_start[e + 1]`` and ``words`` is sorted inside it: a child lookup
  is one binary search. The parent of an n-gram is its prefix, so a context is found by walking
  its tokens from the oldest one.
* ``counts[e]`` is the Kneser-Ney count of the n-gram: the raw count at the highest order, the
  number of distinct tokens seen directly to its left (the continuation count) below it.
* ``denom[e]`` and ``gamma[e]`` belong to entry ``e`` used as a context: the sum of its
  children's counts and the interpolation weight ``(D1 N1 + D2 N2 + D3 N3+) / denom``.
* ``disc[k, r]`` is the discount of an n-gram of length ``k`` whose count is ``r`` (``r`` capped
  at 3; ``disc[k, 0] = 0``).
* ``p1`` is the full unigram level, already interpolated with the uniform distribution over the
  predictable ids; it does not depend on the context, so it is computed once.

The probability of ``w`` after context ``h`` (the last ``order - 1`` tokens) is the recursion
``p_j = gamma[h_j] * p_{j-1} + max(c(h_j w) - D, 0) / denom[h_j]`` over the seen context lengths
``j = 1 .. order-1`` (``p_0 = p1[w]``), expanded into ``scale[0] * p1[w] + sum_j scale[j] *
term_j(w)`` with ``scale[j]`` the product of the gammas above level j. In that form the full
vector costs one pass over the vocabulary plus one update per seen continuation, and
``next_probs`` and the pointwise ``interpolated_prob`` perform the same operations in the same
order, so they agree bit for bit.

Counting itself (sort/unique over packed uint64 keys ``parent << 32 | token``) is vectorised
numpy in :mod:`bytepiece.continuation.lm`; this module holds the loops numpy cannot express.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit
from .search import find_sorted

ROOT = 0


@njit(cache=True, nogil=True, inline="always")
def _child(words, child_start, node, w):
    """Entry of the child of ``node`` on token ``w`` or -1 (binary search in its range)."""
    return find_sorted(words, child_start[node], child_start[node + 1], w)


@njit(cache=True, nogil=True)
def find_contexts(words, child_start, order, context, a, b, nodes):
    """``nodes[j]`` = entry of the last ``j`` tokens of ``context[a:b]`` for j = 1..order-1, or -1.

    A context that was never seen has no longer seen context either (every suffix of a seen
    n-gram was seen), so the search stops at the first miss.
    """
    nodes[0] = ROOT
    for j in range(1, order):
        nodes[j] = -1
    for j in range(1, order):
        if j > b - a:
            break
        node = ROOT
        for t in range(b - j, b):
            node = _child(words, child_start, node, context[t])
            if node < 0:
                break
        if node < 0:
            break
        nodes[j] = node


@njit(cache=True, nogil=True)
def level_scales(nodes, order, denom, gamma, scale):
    """``scale[j]``: the weight of level j+1's own term in the interpolated probability (the
    product of the gammas of the longer seen contexts); ``scale[0]`` multiplies ``p1``. Levels
    whose context is unseen or has no counted continuation get weight 0 (they are skipped)."""
    s = 1.0
    for j in range(order - 1, 0, -1):
        node = nodes[j]
        if node < 0 or denom[node] == 0.0:
            scale[j] = 0.0
            continue
        scale[j] = s
        s *= gamma[node]
    scale[0] = s


@njit(cache=True, nogil=True)
def interpolated_prob(w, nodes, scale, order, p1, words, child_start, counts, denom, disc):
    """The probability of ``w`` after the context whose ``nodes`` and ``scale`` (:func:`level_scales`)
    are given: the same value as ``next_probs`` gives it, bit for bit."""
    p = scale[0] * p1[w]
    for j in range(1, order):
        if scale[j] == 0.0:
            continue
        node = nodes[j]
        e = _child(words, child_start, node, w)
        if e >= 0:
            c = counts[e]
            if c > 0:
                p += scale[j] * (max(c - disc[j + 1, min(c, 3)], 0.0) / denom[node])
    return p


@njit(cache=True, nogil=True)
def next_probs(context, order, p1, words, child_start, counts, denom, gamma, disc, out):
    """The full next-token distribution after ``context`` (its last order-1 tokens) into ``out``:
    one pass over the vocabulary plus one update per seen continuation."""
    nodes = np.empty(order, np.int64)
    scale = np.empty(order, np.float64)
    find_contexts(words, child_start, order, context, 0, context.shape[0], nodes)
    level_scales(nodes, order, denom, gamma, scale)
    s0 = scale[0]
    for w in range(p1.shape[0]):
        out[w] = s0 * p1[w]
    for j in range(1, order):
        if scale[j] == 0.0:
            continue
        node = nodes[j]
        d = denom[node]
        sj = scale[j]
        for e in range(child_start[node], child_start[node + 1]):
            c = counts[e]
            if c > 0:
                out[words[e]] += sj * (max(c - disc[j + 1, min(c, 3)], 0.0) / d)


@njit(cache=True, nogil=True)
def next_logprobs(context, order, p1, words, child_start, counts, denom, gamma, disc, out):
    """Natural-log version of :func:`next_probs` (``-inf`` where the probability is 0)."""
    next_probs(context, order, p1, words, child_start, counts, denom, gamma, disc, out)
    for w in range(out.shape[0]):
        out[w] = np.log(out[w])


@njit(cache=True, nogil=True)
def token_probs(context, candidates, order, p1, words, child_start, counts, denom, gamma, disc, out):
    """``out[i]`` = probability of ``candidates[i]`` after ``context`` (same values as ``next_probs``)."""
    nodes = np.empty(order, np.int64)
    scale = np.empty(order, np.float64)
    find_contexts(words, child_start, order, context, 0, context.shape[0], nodes)
    level_scales(nodes, order, denom, gamma, scale)
    for i in range(candidates.shape[0]):
        out[i] = interpolated_prob(candidates[i], nodes, scale, order, p1, words, child_start, counts, denom, disc)


@njit(cache=True, nogil=True)
def score_documents(ids, offsets, order, p1, words, child_start, counts, denom, gamma, disc, out):
    """``out[i]`` = natural-log probability of ``ids[i]`` given the up to order-1 tokens before it
    in the same document (documents are ``ids[offsets[d]:offsets[d+1]]``; context resets at each)."""
    nodes = np.empty(order, np.int64)
    scale = np.empty(order, np.float64)
    for d in range(offsets.shape[0] - 1):
        a = offsets[d]
        b = offsets[d + 1]
        for i in range(a, b):
            lo = max(a, i - (order - 1))
            find_contexts(words, child_start, order, ids, lo, i, nodes)
            level_scales(nodes, order, denom, gamma, scale)
            out[i] = np.log(interpolated_prob(ids[i], nodes, scale, order, p1, words, child_start, counts, denom, disc))


@njit(cache=True, nogil=True)
def context_stats(child_start, counts, lo, hi, disc_k, denom, gamma):
    """For entries lo..hi-1 used as contexts: the sum of their children's counts and gamma, with
    ``disc_k`` the discounts of the children's level."""
    for e in range(lo, hi):
        total = 0.0
        mass = 0.0
        for c_e in range(child_start[e], child_start[e + 1]):
            c = counts[c_e]
            if c > 0:
                total += c
                mass += disc_k[min(c, 3)]
        denom[e] = total
        gamma[e] = mass / total if total > 0 else 0.0


@njit(cache=True, nogil=True)
def window_positions(offsets, n, k):
    """Indices i whose k-gram ``ids[i-k+1 .. i]`` lies inside one document."""
    total = 0
    for d in range(offsets.shape[0] - 1):
        total += max(0, offsets[d + 1] - offsets[d] - k + 1)
    out = np.empty(total, np.int64)
    p = 0
    for d in range(offsets.shape[0] - 1):
        for i in range(offsets[d] + k - 1, offsets[d + 1]):
            out[p] = i
            p += 1
    return out
