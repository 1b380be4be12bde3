"""Vocabulary range queries for the byte-level dynamic program (:mod:`.bytedp`).

The pieces sorted by their bytes make "every piece that starts with u" one contiguous rank range;
appending a byte to u narrows it with two binary searches (:func:`narrow`). Over such a range the
Kneser-Ney probability mass splits into the unigram part (a cumulative sum in rank order) and the
counted continuations of each context level (a pass over that context's children), whichever of
that or a direct per-token sum is cheaper; :func:`ext_buckets` also splits the mass by the next
byte, which is what a next-byte distribution needs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ._jit import njit
from .copying import fill
from .search import lower_bound
from .sorting import stable_argsort

from .kn import find_contexts, interpolated_prob, level_scales

_SMALL_RANGE = 16  # below this many ranks, sum p1 directly (no cancellation in the cumulative sum)


class SortedVocab(NamedTuple):
    """The pieces in lexicographic order of their bytes."""

    sb: np.ndarray  # uint8: the pieces' bytes, concatenated in rank order
    so: np.ndarray  # int64 (n + 1): piece of rank r is sb[so[r]:so[r + 1]]
    rank_id: np.ndarray  # int32 (n): token id of rank r
    id_rank: np.ndarray  # int32 (vocab_size): rank of an id, -1 for ids without bytes
    first_lo: np.ndarray  # int64 (257): ranks first_lo[b] .. first_lo[b + 1] start with byte b
    max_len: int


class KNView(NamedTuple):
    """The tables of :class:`bytepiece.continuation.lm.NGramLM` plus unigram sums in rank order."""

    order: int
    p1: np.ndarray
    words: np.ndarray
    child_start: np.ndarray
    counts: np.ndarray
    denom: np.ndarray
    gamma: np.ndarray
    disc: np.ndarray
    p1c: np.ndarray  # float64 (n + 1): cumulative p1 over ranks
    p1_first: np.ndarray  # float64 (256): p1 summed over the pieces starting with each byte
    # Contexts with many counted continuations ("big" nodes) get their continuation terms
    # pre-summed, so a query over them costs binary searches instead of a pass over thousands:
    big_row: np.ndarray  # int32 (contexts,): row of a big context, -1 otherwise
    big_first: np.ndarray  # float64 (rows, 256): its terms summed by the first byte of the token
    big_off: np.ndarray  # int64 (rows + 1): its continuations are big_rank[big_off[r]:big_off[r + 1]]
    big_rank: np.ndarray  # int32: their ranks, sorted
    big_cum: np.ndarray  # float64: cumulative terms in that order, big_cum[big_off[r] + r + k] = sum of the first k


@njit(cache=True, nogil=True)
def narrow(sb, so, lo, hi, d, b):
    """Ranks in [lo, hi) (all sharing their first d bytes) whose byte d is ``b``."""
    if lo < hi and so[lo + 1] - so[lo] == d:  # the piece of length d itself sorts first
        lo += 1
    a = lo
    z = hi
    while a < z:
        mid = (a + z) >> 1
        if sb[so[mid] + d] < b:
            a = mid + 1
        else:
            z = mid
    first = a
    z = hi
    while a < z:
        mid = (a + z) >> 1
        if sb[so[mid] + d] <= b:
            a = mid + 1
        else:
            z = mid
    return first, a


@njit(cache=True, nogil=True)
def setup_context(T, ctx, clen, nodes, scale):
    """``nodes`` and ``scale`` of the context ``ctx[:clen]`` in the KN view ``T``, for :func:`token_prob`."""
    find_contexts(T.words, T.child_start, T.order, ctx, 0, clen, nodes)
    level_scales(nodes, T.order, T.denom, T.gamma, scale)


@njit(cache=True, nogil=True)
def token_prob(T, tid, nodes, scale):
    """The probability of token ``tid`` after the context :func:`setup_context` prepared."""
    return interpolated_prob(tid, nodes, scale, T.order, T.p1, T.words, T.child_start, T.counts, T.denom, T.disc)


@njit(cache=True, nogil=True)
def _children(T, nodes, scale):
    """Continuations a pass over the (not big) context levels would visit."""
    n = 0
    for j in range(1, T.order):
        if scale[j] != 0.0 and T.big_row[nodes[j]] < 0:
            n += T.child_start[nodes[j] + 1] - T.child_start[nodes[j]]
    return n


@njit(cache=True, nogil=True)
def _big_sum(T, row, a, b):
    """Continuation terms of big context ``row`` whose rank is in [a, b)."""
    lo = T.big_off[row]
    hi = T.big_off[row + 1]
    i = lower_bound(T.big_rank, lo, hi, a)
    k = lower_bound(T.big_rank, i, hi, b)
    return T.big_cum[k + row] - T.big_cum[i + row]


@njit(cache=True)
def big_tables(child_start, words, counts, disc, id_rank, sb, so, n_ctx, min_children, keep):
    """The big-context tables of :class:`KNView` (contexts with at least ``min_children``); the
    terms of ranks where ``keep`` is False are 0 (their context's normaliser is unchanged)."""
    level = np.empty(words.shape[0], np.int64)  # np.empty and fills: np.zeros and np.full compile per shape
    fill(level, 0, level.shape[0], 0)
    for e in range(n_ctx):
        for c in range(child_start[e], child_start[e + 1]):
            level[c] = level[e] + 1
    big_row = np.empty(n_ctx, np.int32)
    fill(big_row, 0, n_ctx, -1)
    rows = 0
    total = 0
    for e in range(1, n_ctx):
        n = child_start[e + 1] - child_start[e]
        if n >= min_children:
            big_row[e] = rows
            rows += 1
            total += n
    big_first = np.empty((rows, 256), np.float64)
    for first_row in range(rows):
        fill(big_first[first_row], 0, 256, 0.0)
    big_off = np.empty(rows + 1, np.int64)
    fill(big_off, 0, rows + 1, 0)
    big_rank = np.empty(total, np.int32)
    big_cum = np.empty(total + rows, np.float64)
    fill(big_cum, 0, total + rows, 0.0)
    terms = np.empty(total, np.float64)
    for e in range(1, n_ctx):
        row = big_row[e]
        if row < 0:
            continue
        lo = child_start[e]
        n = child_start[e + 1] - lo
        start = big_off[row]
        big_off[row + 1] = start + n
        dn = 0.0
        for c in range(lo, lo + n):
            if counts[c] > 0:
                dn += counts[c]
        for i in range(n):
            c = counts[lo + i]
            t = 0.0
            if c > 0 and dn > 0.0:
                t = max(c - disc[level[e] + 1, min(c, 3)], 0.0) / dn
            r = id_rank[words[lo + i]]
            if r >= 0 and not keep[r]:
                t = 0.0
            big_rank[start + i] = r
            terms[start + i] = t
            if r >= 0:
                big_first[row, sb[so[r]]] += t
        order = stable_argsort(big_rank[start : start + n])
        ranks = big_rank[start : start + n].copy()
        vals = terms[start : start + n].copy()
        acc = 0.0
        big_cum[start + row] = 0.0
        for i in range(n):
            big_rank[start + i] = ranks[order[i]]
            acc += vals[order[i]]
            big_cum[start + row + i + 1] = acc
    return big_row, big_first, big_off, big_rank, big_cum


@njit(cache=True, nogil=True)
def _p1_sum(V, T, a, b):
    if b - a <= _SMALL_RANGE:
        s = 0.0
        for r in range(a, b):
            s += T.p1[V.rank_id[r]]
        return s
    return T.p1c[b] - T.p1c[a]


@njit(cache=True, nogil=True)
def range_mass(V, T, nodes, scale, a, b):
    """Probability of the ranks [a, b) under the context ``nodes``/``scale``."""
    if a >= b:
        return 0.0
    if (b - a) * T.order <= _children(T, nodes, scale) + 64:
        s = 0.0
        for r in range(a, b):
            s += token_prob(T, V.rank_id[r], nodes, scale)
        return s
    s = scale[0] * _p1_sum(V, T, a, b)
    for j in range(1, T.order):
        if scale[j] == 0.0:
            continue
        node = nodes[j]
        if T.big_row[node] >= 0:
            s += scale[j] * _big_sum(T, T.big_row[node], a, b)
            continue
        dn = T.denom[node]
        for e in range(T.child_start[node], T.child_start[node + 1]):
            c = T.counts[e]
            if c > 0:
                r = V.id_rank[T.words[e]]
                if a <= r < b:
                    s += scale[j] * (max(c - T.disc[j + 1, min(c, 3)], 0.0) / dn)
    return s


@njit(cache=True, nogil=True)
def ext_buckets(V, T, nodes, scale, lo, hi, d, w, out):  # noqa: C901 - one walk over a range of ranked pieces is the algorithm
    """``out[b] += w * P(a piece in [lo, hi) longer than d bytes, whose byte d is b)``."""
    a = lo
    if a < hi and V.so[a + 1] - V.so[a] == d:
        a += 1
    if a >= hi:
        return
    sb = V.sb
    so = V.so
    if d == 0:
        for b in range(256):
            out[b] += w * scale[0] * T.p1_first[b]
    elif (hi - a) * T.order <= _children(T, nodes, scale) + 64:
        for r in range(a, hi):
            out[sb[so[r] + d]] += w * token_prob(T, V.rank_id[r], nodes, scale)
        return
    else:
        k = a
        while k < hi:
            b = sb[so[k] + d]
            _, e = narrow(sb, so, k, hi, d, b)
            out[b] += w * scale[0] * _p1_sum(V, T, k, e)
            k = e
    for j in range(1, T.order):
        if scale[j] == 0.0:
            continue
        node = nodes[j]
        row = T.big_row[node]
        if row >= 0 and d == 0:
            for b in range(256):
                out[b] += w * scale[j] * T.big_first[row, b]
            continue
        if row >= 0:
            k = a
            while k < hi:
                b = sb[so[k] + d]
                _, e = narrow(sb, so, k, hi, d, b)
                out[b] += w * scale[j] * _big_sum(T, row, k, e)
                k = e
            continue
        dn = T.denom[node]
        for e in range(T.child_start[node], T.child_start[node + 1]):
            c = T.counts[e]
            if c > 0:
                r = V.id_rank[T.words[e]]
                if a <= r < hi:
                    out[sb[so[r] + d]] += w * scale[j] * (max(c - T.disc[j + 1, min(c, 3)], 0.0) / dn)


