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
number of crossing pieces plus the number of candidates ruled out. Pieces with a newline followed by another byte
(``barrier``) are never produced (chunks end after newline runs) and never compete.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .byterange import _p, _setup, ext_buckets, narrow
from .kn import find_contexts

NO_SCORE = -np.inf
TIE = 1e-9  # score margins this close to 0 are decided by the tokenizer itself (float rounding decides ties)


@njit(cache=True, nogil=True, inline="always")
def _base(best, data, s):
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
    keep = np.zeros(n, np.bool_)
    tie = np.zeros(n, np.bool_)
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
def _range_of(sb, so, n, data, a, b):
    """Ranks of the pieces that start with ``data[a:b]``."""
    lo = 0
    hi = n
    for x in range(b - a):
        lo, hi = narrow(sb, so, lo, hi, x, data[a + x])
        if lo >= hi:
            break
    return lo, hi


@njit(cache=True, nogil=True)
def window_ranges(sb, so, data, a, m, lo, hi):
    """``lo[i], hi[i]``: the ranks of the pieces that start with ``data[a + i:m]``."""
    n = so.shape[0] - 1
    for i in range(m - a + 1):
        lo[i], hi[i] = _range_of(sb, so, n, data, a + i, m)


@njit(cache=True)
def suffix_tables(sb, so, max_len, score_r, beta, boff, keep):
    """For every piece q and offset d: the rank range of the pieces that start with ``q[d:]``
    (``slo``/``shi``, laid out like ``beta``); and for every length o, the ranks ordered so that
    each group of pieces sharing their first o bytes is sorted by ``h = bestseg(t[o:]) - s(t)``,
    largest first (``order[o]``, ``hval[o]``; -inf for pieces that cannot be ruled out that way:
    not kept, or exactly o bytes long)."""
    n = so.shape[0] - 1
    slo = np.zeros(boff[n], np.int32)
    shi = np.zeros(boff[n], np.int32)
    for q in range(n):
        size = so[q + 1] - so[q]
        for d in range(1, size):
            lo, hi = _range_of(sb, so, n, sb, so[q] + d, so[q + 1])
            slo[boff[q] + d] = lo
            shi[boff[q] + d] = hi
    lcp = np.zeros(n, np.int64)
    for r in range(1, n):
        a = so[r - 1]
        b = so[r]
        top = min(so[r] - so[r - 1], so[r + 1] - so[r])
        k = 0
        while k < top and sb[a + k] == sb[b + k]:
            k += 1
        lcp[r] = k
    order = np.zeros((max_len + 1, n), np.int32)
    hval = np.full((max_len + 1, n), NO_SCORE)
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
                idx = np.argsort(-h[g:e], kind="mergesort")
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
        lo, hi = _range_of(sb, so, n, data, a, j)
        thr = bj - _base(best, data, a)
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


@njit(cache=True, nogil=True)
def _lower(a, lo, hi, x):
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _subtract(V, T, nodes, scale, excl, ea, eb, d, w, mark, out):
    """Take the ruled-out ranks ``excl[ea:eb]`` (those longer than d) back out of the bucket sums
    of :func:`ext_buckets`: their unigram part one by one, their counted part by a pass over each
    context's continuations or by a search per rank, whichever is shorter."""
    sb = V.sb
    so = V.so
    s0 = w * scale[0]
    for e in range(ea, eb):
        r = excl[e]
        if so[r + 1] - so[r] > d:
            out[sb[so[r] + d]] -= s0 * T.p1[V.rank_id[r]]
    marked = False
    for jj in range(1, T.order):
        if scale[jj] == 0.0:
            continue
        node = nodes[jj]
        c0 = T.child_start[node]
        c1 = T.child_start[node + 1]
        sj = w * scale[jj]
        dn = T.denom[node]
        if (eb - ea) * 16 < c1 - c0:
            for e in range(ea, eb):
                r = excl[e]
                if so[r + 1] - so[r] <= d:
                    continue
                k = _child(T.words, c0, c1, V.rank_id[r])
                if k >= 0 and T.counts[k] > 0:
                    c = T.counts[k]
                    out[sb[so[r] + d]] -= sj * (max(c - T.disc[jj + 1, min(c, 3)], 0.0) / dn)
            continue
        if not marked:
            for e in range(ea, eb):
                mark[excl[e]] = True
            marked = True
        for k in range(c0, c1):
            c = T.counts[k]
            if c <= 0:
                continue
            r = V.id_rank[T.words[k]]
            if r >= 0 and mark[r] and so[r + 1] - so[r] > d:
                out[sb[so[r] + d]] -= sj * (max(c - T.disc[jj + 1, min(c, 3)], 0.0) / dn)
    if marked:
        for e in range(ea, eb):
            mark[excl[e]] = False


@njit(cache=True, nogil=True, inline="always")
def _child(words, lo, hi, w):
    while lo < hi:
        mid = (lo + hi) >> 1
        x = words[mid]
        if x < w:
            lo = mid + 1
        elif x > w:
            hi = mid
        else:
            return mid
    return -1


@njit(cache=True, nogil=True)
def kn_buckets(V, T, keep, ctx, clen, weight, start, m, rlo, rhi, excl, excl_off, mark, out):
    """Canonical next-byte masses under a Kneser-Ney view ``T`` whose range sums already leave
    out the pieces ``keep`` rejects. Entry i is the single state at ``start[i]`` (bytes of the
    window: ``tail``, which ends at the current position), its context ``ctx[i, :clen[i]]``, its
    weight, ``rlo[i]``/``rhi[i]`` the ranks of the pieces that start with the bytes from there to
    ``m``, and ``excl[excl_off[i]:excl_off[i + 1]]`` the sorted ranks its last token may not
    take (``mark``: a scratch array of False over ranks). Adds to ``out`` and returns the weighted mass of the pieces that end exactly at the
    current position (for the probability of the bytes so far)."""
    nodes = np.empty(T.order, np.int64)
    scale = np.empty(T.order, np.float64)
    ending = 0.0
    for i in range(start.shape[0]):
        w = weight[i]
        if w == 0.0:
            continue
        d = m - start[i]
        lo = rlo[i]
        hi = rhi[i]
        if lo >= hi:
            continue
        _setup(T, ctx[i], clen[i], nodes, scale)
        ea = _lower(excl, excl_off[i], excl_off[i + 1], lo)
        eb = _lower(excl, ea, excl_off[i + 1], hi)
        a = lo
        if V.so[lo + 1] - V.so[lo] == d:
            a = lo + 1
            if d > 0 and keep[lo] and not (ea < eb and excl[ea] == lo):
                ending += w * _p(T, V.rank_id[lo], nodes, scale)
        if a >= hi:
            continue
        if hi - a <= 64:
            e = ea
            for r in range(a, hi):
                while e < eb and excl[e] < r:
                    e += 1
                if keep[r] and not (e < eb and excl[e] == r):
                    out[V.sb[V.so[r] + d]] += w * _p(T, V.rank_id[r], nodes, scale)
            continue
        ext_buckets(V, T, nodes, scale, lo, hi, d, w, out)
        _subtract(V, T, nodes, scale, excl, ea, eb, d, w, mark, out)
    for b in range(256):
        if out[b] < 0.0:
            out[b] = 0.0
    return ending


@njit(cache=True, nogil=True)
def viterbi(sb, so, rank_id, max_len, score_r, barrier, data, t0, t1, best, back, tok):
    """Positions t0 < t <= t1 of the Viterbi pass over ``data`` (``best``/``back`` already hold
    every position up to t0): ``best[t]`` the best score of a segmentation of ``data[:t]``,
    ``back[t]`` the start of its last piece (the earliest of equally good ones, the tokenizer's
    tie rule), ``tok[t]`` that piece's id; -inf / -1 where no segmentation reaches t."""
    n = so.shape[0] - 1
    for t in range(t0 + 1, t1 + 1):
        best[t] = NO_SCORE
        back[t] = -1
        tok[t] = -1
    for s in range(max(0, t0 + 1 - max_len), t1):
        if best[s] == NO_SCORE:
            continue
        base = _base(best, data, s)
        lo = 0
        hi = n
        for d in range(min(max_len, t1 - s)):
            lo, hi = narrow(sb, so, lo, hi, d, data[s + d])
            if lo >= hi:
                break
            e = s + d + 1
            if e > t0 and so[lo + 1] - so[lo] == d + 1 and not barrier[lo]:
                v = base + score_r[lo]
                if v > best[e]:
                    best[e] = v
                    back[e] = s
                    tok[e] = rank_id[lo]


@njit(cache=True, nogil=True)
def kn_chain(T, back, tok, t0, t1, ctx, clen, lmass):
    """The Kneser-Ney state and log-probability of the chain of back-pointers ending at each
    position t0 < t <= t1, from the states of the positions before (unreachable: -inf)."""
    order = T.order
    c = ctx.shape[1]
    nodes = np.empty(order, np.int64)
    scale = np.empty(order, np.float64)
    tmp = np.empty(c + 1, np.int32)
    for t in range(t0 + 1, t1 + 1):
        j = back[t]
        if j < 0 or lmass[j] == NO_SCORE:
            lmass[t] = NO_SCORE
            clen[t] = 0
            continue
        n = clen[j]
        _setup(T, ctx[j], n, nodes, scale)
        p = _p(T, tok[t], nodes, scale)
        lmass[t] = lmass[j] + np.log(p) if p > 0.0 else NO_SCORE
        for i in range(n):
            tmp[i] = ctx[j, i]
        tmp[n] = tok[t]
        keep = min(n + 1, order - 1)
        off = n + 1 - keep
        find_contexts(T.words, T.child_start, order, tmp, off, n + 1, nodes)
        deep = 0
        for jj in range(1, order):
            if nodes[jj] >= 0:
                deep = jj
        clen[t] = deep
        for i in range(deep):
            ctx[t, i] = tmp[n + 1 - deep + i]
