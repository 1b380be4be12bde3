"""The canonical dynamic program (:mod:`bytepiece.continuation.canonical`): one state per byte
position, the chain of Viterbi back-pointers ending there.

:func:`viterbi` extends the tokenizer's own Viterbi pass (same sums, same order, same tie rule, a
chunk starting from 0) by a few positions; :func:`kn_chain` carries the Kneser-Ney state and
log-probability along each position's chain; :func:`kn_buckets` gives the next-byte masses of the
states of the last positions, over the pieces a canonical last token may be (the range sums of a
view without the pieces that are never canonical, minus the ones a crossing piece rules out at
that position, :func:`bytepiece.kernels.canonical.exclusions`).
"""

from __future__ import annotations

import numpy as np
from ._jit import njit
from .search import find_sorted, lower_bound

from .byterange import ext_buckets, narrow, setup_context, token_prob
from .canonical import NO_SCORE, chunk_base, range_of
from .kn import find_contexts


@njit(cache=True, nogil=True)
def window_ranges(sb, so, data, a, m, lo, hi):
    """``lo[i], hi[i]``: the ranks of the pieces that start with ``data[a + i:m]``."""
    n = so.shape[0] - 1
    for i in range(m - a + 1):
        lo[i], hi[i] = range_of(sb, so, n, data, a + i, m)


@njit(cache=True, nogil=True)
def _subtract(V, T, nodes, scale, excl, ea, eb, d, w, mark, out):  # noqa: C901 - one pass over the ruled-out ranks, two ways by cost, is the algorithm
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
                k = find_sorted(T.words, c0, c1, V.rank_id[r])
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


@njit(cache=True, nogil=True)
def kn_buckets(V, T, keep, ctx, clen, weight, start, m, rlo, rhi, excl, excl_off, mark, out):
    """Canonical next-byte masses at position ``m`` under a Kneser-Ney view ``T`` whose range sums
    already leave out the pieces ``keep`` rejects. Entry i is the single state at position
    ``start[i]``: its context ``ctx[i, :clen[i]]``, its weight, ``rlo[i]``/``rhi[i]`` the ranks of
    the pieces that start with the bytes from there to ``m``, and ``excl[excl_off[i]:excl_off[i +
    1]]`` the sorted ranks its last token may not take (``mark``: a scratch array of False over
    ranks). Adds to ``out``; returns the weighted mass of the pieces that end exactly at ``m``
    (for the probability of the bytes so far)."""
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
        setup_context(T, ctx[i], clen[i], nodes, scale)
        ea = lower_bound(excl, excl_off[i], excl_off[i + 1], lo)
        eb = lower_bound(excl, ea, excl_off[i + 1], hi)
        a = lo
        if V.so[lo + 1] - V.so[lo] == d:
            a = lo + 1
            if d > 0 and keep[lo] and not (ea < eb and excl[ea] == lo):
                ending += w * token_prob(T, V.rank_id[lo], nodes, scale)
        if a >= hi:
            continue
        if hi - a <= 64:
            e = ea
            for r in range(a, hi):
                while e < eb and excl[e] < r:
                    e += 1
                if keep[r] and not (e < eb and excl[e] == r):
                    out[V.sb[V.so[r] + d]] += w * token_prob(T, V.rank_id[r], nodes, scale)
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
        base = chunk_base(best, data, s)
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
        setup_context(T, ctx[j], n, nodes, scale)
        p = token_prob(T, tok[t], nodes, scale)
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
