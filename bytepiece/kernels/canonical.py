"""Kernels of the canonical byte-level distribution: which token sequences a Viterbi tokenizer
produces, decided locally (:mod:`bytepiece.continuation.canonical` has the argument).

A token sequence is the tokenizer's own segmentation of its bytes exactly when, at each of its
token ends, the Viterbi back-pointer (the earliest start among the best-scoring last pieces)
is the start of that token. For every token but the last one of a sequence covering known
bytes, that is a table of back-pointers over the known bytes. For a last token ``t`` that starts
at ``j`` and reaches into unknown bytes, it holds iff

* (A) ``[t]`` is a best segmentation of ``t``'s own bytes (a static property: :func:`piece_tables`);
* (B) no path that crosses ``j`` with a piece ``q = y[a:c]`` (``a < j < c < end of t``) scores
  more than the path through ``j``: ``best[a] + s(q) + bestseg(t[c - j:]) <= best[j] + s(t)``;
* (C) no piece ``q = y[a:end of t]`` with ``a < j`` ties or beats it (the earlier start would win).

``bestseg`` of every suffix of every piece is precomputed (``beta``), so (B) and (C) are one
comparison per (crossing piece, candidate) pair; and the candidates that start with a given w,
sorted by how much they lose to ``bestseg`` of their rest (:func:`suffix_tables`), make the ones a
crossing piece rules out a prefix of one sorted list (:func:`exclusions`): the work is the
number of crossing pieces plus the number of candidates ruled out. A comparison within
:data:`TIE` of a tie is settled by replaying the tokenizer's own sums (:func:`ruled_out`). Pieces
with a newline followed by another byte (``barrier``) are never produced (chunks end after
newline runs) and never compete. The dynamic program itself is :mod:`.canonical_dp`.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .byterange import narrow
from .copying import fill
from .sorting import stable_argsort

NO_SCORE = -np.inf
TIE = 1e-9  # score margins this close to 0 are decided by the tokenizer itself (float rounding decides ties)


@njit(cache=True, nogil=True, inline="always")
def chunk_base(best, data, s):
    """The score a segmentation continues from at position s: 0 where a chunk starts (after a
    run of newlines; each chunk is segmented on its own, from 0), else ``best[s]``."""
    if s > 0 and data[s - 1] == 10 and data[s] != 10:
        return 0.0
    return best[s]


@njit(cache=True)
def piece_tables(sb, so, max_len, score_r, barrier):
    """``(beta, boff, keep, tie)``: ``beta[boff[r] + o]`` is the best score of any segmentation
    of piece r's bytes from offset o (0 at the end); ``keep[r]``: piece r is a best segmentation
    of its own bytes and may be produced at all (condition A); ``tie[r]``: its best split scores
    within :data:`TIE` of it, so float rounding in context decides (kept, for the caller to ask
    the tokenizer)."""
    n = so.shape[0] - 1
    boff = np.empty(n + 1, np.int64)
    boff[0] = 0
    for r in range(n):
        boff[r + 1] = boff[r] + (so[r + 1] - so[r]) + 1
    beta = np.empty(boff[n], np.float64)
    keep = np.empty(n, np.bool_)  # np.empty and fills: np.zeros and np.full compile per shape
    fill(keep, 0, n, False)
    tie = np.empty(n, np.bool_)
    fill(tie, 0, n, False)
    for r in range(n):
        size = so[r + 1] - so[r]
        base = boff[r]
        beta[base + size] = 0.0
        split = NO_SCORE
        for o in range(size - 1, -1, -1):
            best = NO_SCORE
            lo = 0
            hi = n
            for d in range(min(max_len, size - o)):
                lo, hi = narrow(sb, so, lo, hi, d, sb[so[r] + o + d])
                if lo >= hi:
                    break
                if so[lo + 1] - so[lo] == d + 1 and not barrier[lo]:
                    v = score_r[lo] + beta[base + o + d + 1]
                    if v > best:
                        best = v
                    if o == 0 and d + 1 < size and v > split:
                        split = v
            beta[base + o] = best
        margin = score_r[r] - split
        keep[r] = not barrier[r] and margin > -TIE
        tie[r] = keep[r] and margin < TIE
    return beta, boff, keep, tie


@njit(cache=True, nogil=True)
def range_of(sb, so, n, data, a, b):
    """Ranks of the pieces that start with ``data[a:b]``."""
    lo = 0
    hi = n
    for x in range(b - a):
        lo, hi = narrow(sb, so, lo, hi, x, data[a + x])
        if lo >= hi:
            break
    return lo, hi


@njit(cache=True)
def suffix_tables(sb, so, max_len, score_r, beta, boff, keep):
    """For every piece q and offset d: the rank range of the pieces that start with ``q[d:]``
    (``slo``/``shi``, laid out like ``beta``); and for every length o, the ranks ordered so that
    each group of pieces sharing their first o bytes is sorted by ``h = bestseg(t[o:]) - s(t)``,
    largest first (``order[o]``, ``hval[o]``; -inf for pieces that cannot be ruled out that way:
    not kept, or exactly o bytes long)."""
    n = so.shape[0] - 1
    slo = np.empty(boff[n], np.int32)
    fill(slo, 0, boff[n], 0)
    shi = np.empty(boff[n], np.int32)
    fill(shi, 0, boff[n], 0)
    for q in range(n):
        size = so[q + 1] - so[q]
        for d in range(1, size):
            lo, hi = range_of(sb, so, n, sb, so[q] + d, so[q + 1])
            slo[boff[q] + d] = lo
            shi[boff[q] + d] = hi
    lcp = np.empty(n, np.int64)
    fill(lcp, 0, n, 0)
    for r in range(1, n):
        a = so[r - 1]
        b = so[r]
        top = min(so[r] - so[r - 1], so[r + 1] - so[r])
        k = 0
        while k < top and sb[a + k] == sb[b + k]:
            k += 1
        lcp[r] = k
    order = np.empty((max_len + 1, n), np.int32)
    hval = np.empty((max_len + 1, n), np.float64)
    for o in range(max_len + 1):
        fill(order[o], 0, n, 0)
        fill(hval[o], 0, n, NO_SCORE)
    h = np.empty(n, np.float64)
    for o in range(1, max_len + 1):
        for t in range(n):
            size = so[t + 1] - so[t]
            h[t] = beta[boff[t] + o] - score_r[t] if size > o and keep[t] else NO_SCORE
            order[o, t] = t
        g = 0
        while g < n:
            e = g + 1
            if so[g + 1] - so[g] >= o:
                while e < n and lcp[e] >= o:
                    e += 1
                idx = stable_argsort(-h[g:e])
                for i in range(e - g):
                    order[o, g + i] = g + idx[i]
                    hval[o, g + i] = h[g + idx[i]]
            g = e
    return slo, shi, order, hval


@njit(cache=True, nogil=True)
def exclusions(sb, so, max_len, score_r, boff, keep, barrier, slo, shi, order, hval, data, best, j, stamp, gen,
               out, near):
    """Kept pieces ruled out as the last token starting at j (conditions B and C), from the
    Viterbi best scores ``best`` of the positions of ``data`` (j < len(data)). A piece q = u + w
    crossing j (u = ``data[a:j]``) rules out t (t starts with w) iff
    ``s(q) - s(t) + bestseg(t[|w|:]) > best[j] - best[a]``, or, for t == w,
    ``s(q) - s(w) >= best[j] - best[a]``; the first is a prefix of ``order[|w|]`` over the range
    of w. Writes each rank once (``stamp[r] == gen``) to ``out``, or to ``near`` when its margin
    is within :data:`TIE` of 0 (the caller asks the tokenizer); returns both counts."""
    n = so.shape[0] - 1
    cnt = 0
    nn = 0
    bj = best[j]
    for a in range(max(0, j - max_len + 1), j):
        if best[a] == NO_SCORE:
            continue
        d = j - a
        lo, hi = range_of(sb, so, n, data, a, j)
        thr = bj - chunk_base(best, data, a)
        for q in range(lo, hi):
            size = so[q + 1] - so[q]
            if size <= d or barrier[q]:
                continue
            o = size - d
            wlo = slo[boff[q] + d]
            whi = shi[boff[q] + d]
            if wlo >= whi:
                continue
            need = thr - score_r[q]
            if so[wlo + 1] - so[wlo] == o and keep[wlo] and stamp[wlo] != gen:
                margin = -score_r[wlo] - need
                if margin >= TIE:
                    stamp[wlo] = gen
                    out[cnt] = wlo
                    cnt += 1
                elif margin > -TIE:
                    stamp[wlo] = gen
                    near[nn] = wlo
                    nn += 1
            for e in range(wlo, whi):
                if hval[o, e] <= need - TIE:
                    break
                t = order[o, e]
                if stamp[t] != gen:
                    stamp[t] = gen
                    if hval[o, e] > need + TIE:
                        out[cnt] = t
                        cnt += 1
                    else:
                        near[nn] = t
                        nn += 1
    return cnt, nn


@njit(cache=True, nogil=True, inline="always")
def _byte(data, j, sb, start, i):
    """Byte i of ``data[:j]`` followed by the piece whose bytes start at ``sb[start]``."""
    return data[i] if i < j else sb[start + i - j]


@njit(cache=True, nogil=True)
def _ends_with(sb, so, max_len, score_r, barrier, data, best, j, t, lbest):
    """Whether the tokenizer's Viterbi pass over ``data[:j]`` followed by piece t ends with t
    (its back-pointer at the end is j): the same sums in the same order as the tokenizer, so a
    tie is broken the way its rounding breaks it."""
    n = so.shape[0] - 1
    start = so[t]
    end = j + so[t + 1] - so[t]
    for i in range(end - j + 1):
        lbest[i] = NO_SCORE
    back = -1
    for s in range(max(0, j + 1 - max_len), end):
        v0 = best[s] if s <= j else lbest[s - j]
        if v0 == NO_SCORE:
            continue
        if s > 0 and _byte(data, j, sb, start, s - 1) == 10 and _byte(data, j, sb, start, s) != 10:
            v0 = 0.0
        lo = 0
        hi = n
        for d in range(min(max_len, end - s)):
            lo, hi = narrow(sb, so, lo, hi, d, _byte(data, j, sb, start, s + d))
            if lo >= hi:
                break
            e = s + d + 1
            if e > j and so[lo + 1] - so[lo] == d + 1 and not barrier[lo]:
                v = v0 + score_r[lo]
                if v > lbest[e - j]:
                    lbest[e - j] = v
                    if e == end:
                        back = s
    return back == j


@njit(cache=True, nogil=True)
def ruled_out(sb, so, max_len, score_r, barrier, data, best, j, cands, out):
    """The candidates (near ties) that the tokenizer would not end with after ``data[:j]``;
    written to ``out``, returns how many."""
    lbest = np.empty(max_len + 1, np.float64)
    cnt = 0
    for i in range(cands.shape[0]):
        t = cands[i]
        if not _ends_with(sb, so, max_len, score_r, barrier, data, best, j, t, lbest):
            out[cnt] = t
            cnt += 1
    return cnt
