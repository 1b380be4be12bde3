"""Exact byte-level continuation of a Kneser-Ney token LM: a dynamic program over (byte
position, KN state) on the bytes after a fixed token context.

Why a DP and not an enumeration: a tail of m bytes has up to 2**(m-1) tilings by pieces, but an
n-gram LM only sees the deepest context it has counts for, so every tiling that ends at byte j
with the same *deepest seen context* (a node of the KN prefix tree) has the same future. States
are therefore ``(j, node)``; the mass of a state is the summed LM probability of every token
sequence that tiles ``buf[0:j]`` and ends in that context. Mass moves from ``(j, h)`` to
``(j + len(t), h')`` for every piece ``t == buf[j:j+len(t)]``.

Vocabulary queries use the pieces in lexicographic order (:class:`SortedVocab`): the pieces
starting with a byte string are one contiguous rank range, narrowed byte by byte with two binary
searches, and split by their next byte into sub-ranges. ``rlo/rhi[j, d]`` keep the range of
``buf[j:j+d]`` for every live start j, so appending a byte costs one narrowing per start.

Positions live in a ring of ``R`` slots (``slot = j % R``); only starts within the longest piece
of the current end are ever read, and the extra slots let a caller go back a few bytes
(``truncate``) to score another continuation of the same prompt.

Masses are stored relative to a per-position log scale (``lsc``) so that long tails of
improbable tokens neither underflow nor lose precision; ``fac[j, k]`` multiplies every
transition out of a state (the per-step renormalisation of token healing, 1 otherwise).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ._jit import njit

from .byterange import ext_buckets, narrow, range_mass, setup_context, token_prob
from .kn import find_contexts

OK = 0
FULL = 1  # a position needs more than K states: the caller grows K and starts again



class DPState(NamedTuple):
    buf: np.ndarray  # uint8 (R,): the byte at each position (ring)
    rlo: np.ndarray  # int32 (R, L + 1): rank range of the pieces starting with buf[j:j+d]
    rhi: np.ndarray
    tok: np.ndarray  # int32 (R, L + 1): id of the piece buf[j:j+d], or -1
    cnt: np.ndarray  # int64 (R,): states at each position
    node: np.ndarray  # int64 (R, K): deepest seen KN context of each state (the merge key)
    mass: np.ndarray  # float64 (R, K): relative to exp(lsc[j])
    fac: np.ndarray  # float64 (R, K): factor on every transition out of the state
    ctx: np.ndarray  # int32 (R, K, C): the tokens of that context (C = max(order - 1, 1))
    clen: np.ndarray  # int32 (R, K)
    lsc: np.ndarray  # float64 (R,)
    meta: np.ndarray  # int64 (2,): [0] bytes in the buffer (the current end), [1] last status


def make_state(ring: int, max_len: int, k: int, order: int) -> DPState:
    c = max(order - 1, 1)
    return DPState(
        np.zeros(ring, np.uint8), np.zeros((ring, max_len + 1), np.int32), np.zeros((ring, max_len + 1), np.int32),
        np.full((ring, max_len + 1), -1, np.int32), np.zeros(ring, np.int64), np.zeros((ring, k), np.int64),
        np.zeros((ring, k), np.float64), np.ones((ring, k), np.float64), np.zeros((ring, k, c), np.int32),
        np.zeros((ring, k), np.int32), np.full(ring, -np.inf), np.zeros(2, np.int64))


# -- the dynamic program ----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def start(T, S, context):
    """Position 0 holds one state: the deepest seen suffix of ``context``, mass 1."""
    order = T.order
    c = S.ctx.shape[2]
    nodes = np.empty(order, np.int64)
    n = context.shape[0]
    find_contexts(T.words, T.child_start, order, context, 0, n, nodes)
    deep = 0
    for j in range(1, order):
        if nodes[j] >= 0:
            deep = j
    S.cnt[0] = 1
    S.node[0, 0] = nodes[deep]
    S.mass[0, 0] = 1.0
    S.fac[0, 0] = 1.0
    S.clen[0, 0] = deep
    for i in range(deep):
        S.ctx[0, 0, i] = context[n - deep + i]
    for i in range(deep, c):
        S.ctx[0, 0, i] = 0
    S.lsc[0] = 0.0
    S.meta[0] = 0
    S.meta[1] = OK


@njit(cache=True, nogil=True)
def _advance_ranges(V, S, p, b):
    """Byte ``b`` goes to position ``p``: narrow the range of every start that can still reach it."""
    R = S.buf.shape[0]
    L = V.max_len
    S.buf[p % R] = b
    sp = p % R
    S.rlo[sp, 0] = 0
    S.rhi[sp, 0] = V.rank_id.shape[0]
    S.tok[sp, 0] = -1
    for j in range(max(0, p + 1 - L), p + 1):
        sj = j % R
        d = p - j
        lo = S.rlo[sj, d]
        hi = S.rhi[sj, d]
        if lo < hi:
            lo, hi = narrow(V.sb, V.so, lo, hi, d, b)
        S.rlo[sj, d + 1] = lo
        S.rhi[sj, d + 1] = hi
        S.tok[sj, d + 1] = V.rank_id[lo] if lo < hi and V.so[lo + 1] - V.so[lo] == d + 1 else -1


@njit(cache=True, nogil=True)
def _pull(V, T, S, t):  # noqa: C901 - the byte-level lattice recursion: one loop over trie cells is the algorithm
    """All mass arriving at position t (every piece ending there, from every live state)."""
    R = S.buf.shape[0]
    K = S.node.shape[1]
    C = S.ctx.shape[2]
    order = T.order
    st = t % R
    S.cnt[st] = 0
    lt = -np.inf
    nodes = np.empty(order, np.int64)
    scale = np.empty(order, np.float64)
    nodes2 = np.empty(order, np.int64)
    tmp = np.empty(C + 1, np.int32)
    for j in range(max(0, t - V.max_len), t):
        sj = j % R
        tid = S.tok[sj, t - j]
        if tid < 0:
            continue
        base = S.lsc[sj]
        for k in range(S.cnt[sj]):
            w = S.mass[sj, k] * S.fac[sj, k]
            if w == 0.0:
                continue
            n = S.clen[sj, k]
            setup_context(T, S.ctx[sj, k], n, nodes, scale)
            p = token_prob(T, tid, nodes, scale)
            if p == 0.0:
                continue
            for i in range(n):
                tmp[i] = S.ctx[sj, k, i]
            tmp[n] = tid
            keep = min(n + 1, order - 1)
            off = n + 1 - keep
            find_contexts(T.words, T.child_start, order, tmp, off, n + 1, nodes2)
            deep = 0
            for jj in range(1, order):
                if nodes2[jj] >= 0:
                    deep = jj
            key = nodes2[deep]
            slot = -1
            for kk in range(S.cnt[st]):
                if S.node[st, kk] == key:
                    slot = kk
                    break
            if slot < 0:
                slot = S.cnt[st]
                if slot >= K:
                    S.meta[1] = FULL
                    return FULL
                S.cnt[st] = slot + 1
                S.node[st, slot] = key
                S.mass[st, slot] = 0.0
                S.fac[st, slot] = 1.0
                S.clen[st, slot] = deep
                for i in range(deep):
                    S.ctx[st, slot, i] = tmp[n + 1 - deep + i]
            if base > lt:
                if lt > -np.inf:
                    shrink = np.exp(lt - base)
                    for kk in range(S.cnt[st]):
                        S.mass[st, kk] *= shrink
                lt = base
            S.mass[st, slot] += w * p * np.exp(base - lt)
    top = 0.0
    for kk in range(S.cnt[st]):
        top = max(top, S.mass[st, kk])
    if top > 0.0:
        for kk in range(S.cnt[st]):
            S.mass[st, kk] /= top
        lt += np.log(top)
    S.lsc[st] = lt
    return OK


@njit(cache=True, nogil=True)
def _set_factors(V, T, S, j, nl, log_bias):
    """Token healing renormalises each step over the tokens that agree with the pending bytes
    ``buf[j:nl]``; a finite ``log_bias`` multiplies them by ``exp(log_bias)`` instead."""
    R = S.buf.shape[0]
    sj = j % R
    L = V.max_len
    nodes = np.empty(T.order, np.int64)
    scale = np.empty(T.order, np.float64)
    for k in range(S.cnt[sj]):
        setup_context(T, S.ctx[sj, k], S.clen[sj, k], nodes, scale)
        allowed = 0.0
        for d in range(1, min(L, nl - j - 1) + 1):
            tid = S.tok[sj, d]
            if tid >= 0:
                allowed += token_prob(T, tid, nodes, scale)
        if nl - j <= L:
            allowed += range_mass(V, T, nodes, scale, S.rlo[sj, nl - j], S.rhi[sj, nl - j])
        if log_bias == np.inf:
            S.fac[sj, k] = 1.0 / allowed if allowed > 0.0 else 0.0
        else:
            bias = np.exp(log_bias)
            S.fac[sj, k] = bias / (1.0 + (bias - 1.0) * allowed)


@njit(cache=True, nogil=True)
def build(V, T, S, data, nl, log_bias):
    """Feed the first bytes after :func:`start`; transitions out of positions below ``nl`` are
    renormalised (token healing), the rest are plain LM probabilities."""
    for p in range(nl):
        _advance_ranges(V, S, p, data[p])
    for t in range(nl):
        _set_factors(V, T, S, t, nl, log_bias)
        if _pull(V, T, S, t + 1) != OK:
            return FULL
    S.meta[0] = nl
    for p in range(nl, data.shape[0]):
        if push(V, T, S, data[p]) != OK:
            return FULL
    return OK


@njit(cache=True, nogil=True)
def push(V, T, S, b):
    """Append one byte at the current end."""
    m = S.meta[0]
    _advance_ranges(V, S, m, b)
    status = _pull(V, T, S, m + 1)
    if status == OK:
        S.meta[0] = m + 1
    return status


@njit(cache=True, nogil=True)
def probs(V, T, S, out):
    """``out`` = distribution of the byte after the buffer; returns log of the buffer's total
    mass (relative to position 0), so ``log P(b | buffer) = log(out[b])``."""
    R = S.buf.shape[0]
    m = S.meta[0]
    for b in range(256):
        out[b] = 0.0
    lout = -np.inf
    nodes = np.empty(T.order, np.int64)
    scale = np.empty(T.order, np.float64)
    for j in range(max(0, m - V.max_len + 1), m + 1):
        sj = j % R
        d = m - j
        lo = S.rlo[sj, d] if d > 0 else 0
        hi = S.rhi[sj, d] if d > 0 else V.rank_id.shape[0]
        if lo >= hi or S.cnt[sj] == 0:
            continue
        base = S.lsc[sj]
        if base > lout:
            if lout > -np.inf:
                shrink = np.exp(lout - base)
                for b in range(256):
                    out[b] *= shrink
            lout = base
        rel = np.exp(base - lout)
        for k in range(S.cnt[sj]):
            w = S.mass[sj, k] * S.fac[sj, k] * rel
            if w == 0.0:
                continue
            setup_context(T, S.ctx[sj, k], S.clen[sj, k], nodes, scale)
            ext_buckets(V, T, nodes, scale, lo, hi, d, w, out)
    total = 0.0
    for b in range(256):
        total += out[b]
    if total <= 0.0:
        return -np.inf
    for b in range(256):
        out[b] /= total
    return lout + np.log(total)


@njit(cache=True, nogil=True)
def score(V, T, S, data, out):
    """Push ``data`` byte by byte; returns (status, sum of log P(byte | bytes before))."""
    total = 0.0
    for i in range(data.shape[0]):
        probs(V, T, S, out)
        b = data[i]
        total += np.log(out[b])
        if push(V, T, S, b) != OK:
            return FULL, total
    return OK, total


@njit(cache=True, nogil=True)
def greedy(V, T, S, n, result, out):
    """Push the most probable byte ``n`` times (ties: the lowest byte); the bytes go to ``result``."""
    for i in range(n):
        probs(V, T, S, out)
        b = np.argmax(out)
        result[i] = b
        if push(V, T, S, np.uint8(b)) != OK:
            return FULL
    return OK
