"""Exact computations over the segmentation lattice of a text: k-best Viterbi, the forward
algorithm (log partition function and expected score, for the entropy), and backward sampling.

Same chunking and trie as ``kernels/encode.py``: chunks end after each run of newlines, every
chunk is segmented on its own with its scores starting from 0, and candidates for an end
position e are found by walking the trie of *reversed* pieces back over ``text[e-1], ...``
(shortest piece first). Arrays are indexed by global byte position; the start of a chunk is
never stored (its value is the constant 0), because that position is also the end of the previous
chunk, whose lists it holds.

Totals are sums in the same order everywhere: within a chunk left to right from 0.0, then the
chunk totals left to right from 0.0. ``Tokenizer.score`` adds in that order too, so the scores
of ``nbest`` and ``sample`` equal ``score`` exactly, and the first n-best path is the Viterbi
path of ``encode`` (the same additions, and ties broken the same way: the longer last piece).
"""

from __future__ import annotations

import math

import numpy as np
from ._jit import njit

from .chunking import chunk_end
from .rng import next_uniform, seed_state
from .sorting import stable_argsort


def combine_capacity(n: int) -> int:
    """Upper bound on pairs (x, y) with (x + 1) * (y + 1) <= n: the only pairs of ranks in two
    sorted lists that can be among the n best sums (every pair below and left of one dominates it)."""
    return n * (int(math.log(n)) + 2) if n > 1 else 1


@njit(cache=True, nogil=True)
def kbest_lattice(bc, scores, piece, text, n, sc, ps, pr, cl, cnt, csc, cprev, crank, cand_s, cand_x, cand_y):
    """The n best segmentations of ``text``.

    Per end position e (best first): ``sc[e, r]`` score, ``ps[e, r]`` start of the last piece,
    ``pr[e, r]`` rank of the prefix at that start (-1: the chunk start), ``cl[e, r]`` piece id;
    ``cnt[e]`` entries. At each chunk end b, ``csc[b, r]`` is the r-th best total of the text up to
    b, made of ``cprev[b, r]``-th best total up to the chunk start and the ``crank[b, r]``-th best
    segmentation of the chunk. Returns the number of segmentations found (<= n).

    A list for e merges, for each piece (s, e), the list at s shifted by the piece's score; on
    equal scores the piece seen later (the longer one) goes first and a list keeps its order, so
    rank 0 is exactly the Viterbi choice of ``kernels/encode.py``.
    """
    L = text.shape[0]
    tmp_s = np.empty(n, np.float64)
    tmp_ps = np.empty(n, np.int64)
    tmp_pr = np.empty(n, np.int64)
    tmp_cl = np.empty(n, np.int32)
    gsc = np.zeros(n, np.float64)  # best totals up to the current chunk start
    gcount = 1
    gsc[0] = 0.0
    a = 0
    while a < L:
        b = chunk_end(text, a, L)
        for e in range(a + 1, b + 1):
            count = 0
            node = 0
            for s in range(e - 1, a - 1, -1):
                nxt = bc[2 * node] + text[s]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
                w = scores[node]
                if w == -np.inf:
                    continue
                pid = piece[node]
                m = 1 if s == a else cnt[s]
                # merge the new list (m entries) before the current one (count entries) on ties
                i = 0
                j = 0
                k = 0
                while k < n and (i < count or j < m):
                    v = (0.0 if s == a else sc[s, j]) + w if j < m else -np.inf
                    if j < m and (i >= count or v >= sc[e, i]):
                        tmp_s[k] = v
                        tmp_ps[k] = s
                        tmp_pr[k] = -1 if s == a else j
                        tmp_cl[k] = pid
                        j += 1
                    else:
                        tmp_s[k] = sc[e, i]
                        tmp_ps[k] = ps[e, i]
                        tmp_pr[k] = pr[e, i]
                        tmp_cl[k] = cl[e, i]
                        i += 1
                    k += 1
                for q in range(k):
                    sc[e, q] = tmp_s[q]
                    ps[e, q] = tmp_ps[q]
                    pr[e, q] = tmp_pr[q]
                    cl[e, q] = tmp_cl[q]
                count = k
            cnt[e] = count
        # combine: the n best of gsc[x] + sc[b, y], ties in (x, y) order, so (0, 0) leads
        k = 0
        for x in range(gcount):
            for y in range(cnt[b]):
                if (x + 1) * (y + 1) > n:
                    break
                cand_s[k] = gsc[x] + sc[b, y]
                cand_x[k] = x
                cand_y[k] = y
                k += 1
        order = stable_argsort(-cand_s[:k])
        gcount = min(n, k)
        for r in range(gcount):
            o = order[r]
            csc[b, r] = cand_s[o]
            cprev[b, r] = cand_x[o]
            crank[b, r] = cand_y[o]
            gsc[r] = cand_s[o]
        a = b
    return gcount


@njit(cache=True, nogil=True)
def viterbi(bc, scores, piece, text, back, tok):
    """The best segmentation alone (``kbest_lattice`` with n = 1, without its lists): ``back[e]``
    start and ``tok[e]`` piece id of the last piece of the best path to e (chunk by chunk, ties
    to the longer last piece as in ``encode``). Returns the path's total log probability."""
    L = text.shape[0]
    best = np.empty(L + 1, np.float64)
    total = 0.0
    a = 0
    while a < L:
        b = chunk_end(text, a, L)
        best[a] = 0.0  # the chunk restarts from 0 (the previous chunk's total is already added)
        for e in range(a + 1, b + 1):
            top = -np.inf
            start = e - 1
            cell = 0
            node = 0
            for s in range(e - 1, a - 1, -1):
                nxt = bc[2 * node] + text[s]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
                v = best[s] + scores[node]
                if v >= top:
                    top = v
                    start = s
                    cell = node
            best[e] = top
            back[e] = start
            tok[e] = piece[cell]
        total += best[b]
        a = b
    return total


@njit(cache=True, nogil=True)
def viterbi_path(back, tok, L):
    """Piece ids of the path ending at L, in order."""
    k = 0
    e = L
    while e > 0:
        k += 1
        e = back[e]
    out = np.empty(k, np.int32)
    e = L
    while e > 0:
        k -= 1
        out[k] = tok[e]
        e = back[e]
    return out


@njit(cache=True, nogil=True)
def kbest_paths(ps, pr, cl, cprev, crank, L, count, out, bounds):
    """Piece ids of the ``count`` best segmentations, path r in ``out[bounds[r]:bounds[r+1]]``
    (``out`` holds at least ``count * L`` ids); returns the total written."""
    rev = np.empty(max(L, 1), np.int32)
    pos = 0
    bounds[0] = 0
    for r0 in range(count):
        k = 0
        b = L
        r = r0
        while b > 0:
            y = crank[b, r]
            x = cprev[b, r]
            e = b
            q = y
            while True:
                rev[k] = cl[e, q]
                k += 1
                s = ps[e, q]
                nq = pr[e, q]
                e = s
                if nq < 0:
                    break
                q = nq
            b = e
            r = x
        for i in range(k):
            out[pos + i] = rev[k - 1 - i]
        pos += k
        bounds[r0 + 1] = pos
    return pos


@njit(cache=True, nogil=True)
def forward(bc, values, text, logz, expect):
    """Forward algorithm per chunk with weights ``exp(values[cell])`` (alpha * log p).

    ``logz[e]``: log of the total weight of the segmentations of the chunk prefix ending at e;
    ``expect[e]``: the expected sum of ``values`` over the pieces of those segmentations under
    the normalized weights. Log-domain throughout (one running maximum per position, so no
    weight overflows or underflows). Returns (sum of chunk log partition functions, sum of chunk
    expectations): the entropy of the whole text's distribution is their difference.
    """
    L = text.shape[0]
    total_z = 0.0
    total_e = 0.0
    a = 0
    while a < L:
        b = chunk_end(text, a, L)
        for e in range(a + 1, b + 1):
            top = -np.inf
            acc = 0.0
            acc_x = 0.0
            node = 0
            for s in range(e - 1, a - 1, -1):
                nxt = bc[2 * node] + text[s]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
                w = values[node]
                if w == -np.inf:
                    continue
                if s == a:
                    v = w
                    x = w
                else:
                    v = logz[s] + w
                    x = expect[s] + w
                if v > top:
                    f = math.exp(top - v)  # 0.0 while top is -inf
                    acc = acc * f + 1.0
                    acc_x = acc_x * f + x
                    top = v
                else:
                    p = math.exp(v - top)
                    acc += p
                    acc_x += p * x
            logz[e] = top + math.log(acc)
            expect[e] = acc_x / acc
        total_z += logz[b]
        total_e += expect[b]
        a = b
    return total_z, total_e


@njit(cache=True, nogil=True)
def backward_sample(bc, values, scores, piece, text, logz, n_samples, seed, out, bounds, totals):
    """``n_samples`` independent exact draws from p(S) proportional to ``exp(sum values)``,
    given ``logz`` from :func:`forward`: from each chunk's end, the last piece (s, e) is chosen
    with probability ``exp(logz[s] + values - logz[e])`` (the backward step of forward filtering,
    backward sampling). Draw i uses the generator stream (seed, i). Path i goes to
    ``out[bounds[i]:bounds[i+1]]`` and its log probability (sum of ``scores``, chunk by chunk
    left to right) to ``totals[i]``."""
    L = text.shape[0]
    starts = np.empty(L + 1, np.int64)  # chunk starts, in order
    n_chunks = 0
    a = 0
    while a < L:
        starts[n_chunks] = a
        n_chunks += 1
        a = chunk_end(text, a, L)
    starts[n_chunks] = L
    rev = np.empty(max(L, 1), np.int32)
    rev_w = np.empty(max(L, 1), np.float64)
    pos = 0
    bounds[0] = 0
    for i in range(n_samples):
        state = seed_state(seed, i)
        k = 0
        total = 0.0
        for c in range(n_chunks):
            a = starts[c]
            e = starts[c + 1]
            k0 = k
            while e > a:
                u, state = next_uniform(state)
                target = logz[e]
                acc = 0.0
                chosen_s = -1
                chosen_cell = -1
                node = 0
                for s in range(e - 1, a - 1, -1):
                    nxt = bc[2 * node] + text[s]
                    if bc[2 * nxt + 1] != node:
                        break
                    node = nxt
                    w = values[node]
                    if w == -np.inf:
                        continue
                    chosen_s = s  # the last candidate takes any rounding remainder
                    chosen_cell = node
                    acc += math.exp((0.0 if s == a else logz[s]) + w - target)
                    if acc > u:
                        break
                rev[k] = piece[chosen_cell]
                rev_w[k] = scores[chosen_cell]
                k += 1
                e = chosen_s
            chunk = 0.0
            for q in range(k - 1, k0 - 1, -1):
                chunk += rev_w[q]
            total += chunk
            # this chunk's pieces were found last to first: reverse them in place
            lo = k0
            hi = k - 1
            while lo < hi:
                t = rev[lo]
                rev[lo] = rev[hi]
                rev[hi] = t
                lo += 1
                hi -= 1
        for q in range(k):
            out[pos + q] = rev[q]
        pos += k
        bounds[i + 1] = pos
        totals[i] = total
    return pos
