"""Sorted runs of counts: the partial results that training tasks return and the reducer merges.

Two kinds of run, both sorted so that merging is linear and the reduction is deterministic:

- *key runs*: strictly increasing ``uint64`` keys (packed n-grams, packed piece pairs) with
  ``int64`` counts;
- *piece runs*: byte strings of any length, ordered by (64-bit hash, bytes), each with a count:
  ``hashes[i]``, ``counts[i]``, and bytes ``arena[offsets[i]:offsets[i + 1]]``. Ordering by hash
  first makes a range of hash values a *hash partition* of the pieces, so a reducer can process
  the pieces partition by partition; comparing bytes on equal hashes keeps colliding pieces apart.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit
from .prefetch import prefetch
from .stand_ins import small
from .sorting import stable_argsort

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def run_lengths(sorted_keys):
    """Distinct keys of a sorted array and how often each occurs."""
    n = sorted_keys.shape[0]
    m = 0
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            m += 1
    keys = np.empty(m, np.uint64)
    counts = np.zeros(m, np.int64)
    j = -1
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            j += 1
            keys[j] = sorted_keys[i]
        counts[j] += 1
    return keys, counts


@njit(cache=True, nogil=True, error_model="numpy")
def merge_counts(k1, c1, k2, c2):
    """Union of two sorted (key, count) runs, adding the counts of equal keys (sized exactly:
    a first pass counts the union, so a merge never holds more than its inputs and output).

    Which run the next key comes from is a coin toss for runs of different shards, so the
    loops choose without a branch (both sides step on equal keys), with unsigned indices:
    1.5x the speed of an if/elif merge on runs of millions of keys."""
    n1, n2 = k1.shape[0], k2.shape[0]
    i = j = m = 0
    while i < n1 and j < n2:
        a = k1[np.uint64(i)]
        b = k2[np.uint64(j)]
        i += 1 if a <= b else 0
        j += 1 if b <= a else 0
        m += 1
    m += (n1 - i) + (n2 - j)
    keys = np.empty(m, np.uint64)
    counts = np.empty(m, np.int64)
    i = j = m = 0
    while i < n1 and j < n2:
        a = k1[np.uint64(i)]
        b = k2[np.uint64(j)]
        first = a <= b
        second = b <= a
        keys[np.uint64(m)] = a if first else b
        counts[np.uint64(m)] = (c1[np.uint64(i)] if first else 0) + (c2[np.uint64(j)] if second else 0)
        i += 1 if first else 0
        j += 1 if second else 0
        m += 1
    while i < n1:
        keys[m] = k1[i]
        counts[m] = c1[i]
        i += 1
        m += 1
    while j < n2:
        keys[m] = k2[j]
        counts[m] = c2[j]
        j += 1
        m += 1
    return keys, counts


@njit(cache=True, nogil=True, inline="always")
def hash_bytes(buf, a, b):
    """64-bit FNV-1a of ``buf[a:b]`` with a final mix (the key of piece partitions)."""
    h = _FNV_OFFSET
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h


@njit(cache=True, nogil=True, inline="always")
def _compare(h1, a1, s1, e1, h2, a2, s2, e2):
    """-1, 0 or 1: order of piece (h1, a1[s1:e1]) against (h2, a2[s2:e2])."""
    if h1 != h2:
        return -1 if h1 < h2 else 1
    n1, n2 = e1 - s1, e2 - s2
    for k in range(min(n1, n2)):
        x, y = a1[s1 + k], a2[s2 + k]
        if x != y:
            return -1 if x < y else 1
    if n1 != n2:
        return -1 if n1 < n2 else 1
    return 0


#: entries ahead whose fields ``gather_pieces`` prefetches (the order is random: each entry is
#: a few cache misses)
GATHER_AHEAD = 8


#: runs of up to this many pieces are gathered and keyed by numpy (a few ms), not by the
#: kernels: README's training job then never compiles them (1.1 s of a first run's CPU)
NUMPY_PIECES_MAX = 1 << 16


def gather_pieces(order, hashes, counts, starts, lengths, arena):
    """A piece run ``(hashes, counts, offsets, arena)`` from table entries taken in ``order``
    (already sorted by hash, then bytes): by numpy up to ``NUMPY_PIECES_MAX`` pieces, beyond by
    :func:`kernel_gather_pieces`."""
    if not small(order.shape[0], NUMPY_PIECES_MAX):
        return kernel_gather_pieces(order, hashes, counts, starts, lengths, arena)
    n = order.shape[0]
    taken = lengths[order].astype(np.int64)
    out_o = np.zeros(n + 1, np.int64)
    np.cumsum(taken, out=out_o[1:])
    source = np.repeat(starts[order].astype(np.int64) - out_o[:-1], taken) + np.arange(out_o[n], dtype=np.int64)
    return (hashes[order].astype(np.uint64), counts[order].astype(np.int64), out_o,
            arena[source].astype(np.uint8))


@njit(cache=True, nogil=True, error_model="numpy")
def kernel_gather_pieces(order, hashes, counts, starts, lengths, arena):
    """:func:`gather_pieces` for any number of pieces.

    Two passes, each prefetching ahead: the lengths (the offsets, which size the arena), then
    the hashes, counts and bytes: 30% faster than without on a random order of 2.5M pieces."""
    n = order.shape[0]
    out_o = np.empty(n + 1, np.int64)
    out_o[0] = 0
    total = 0
    for i in range(n):
        if i + GATHER_AHEAD < n:
            e = order[i + GATHER_AHEAD]
            prefetch(lengths, e)
            prefetch(starts, e)
            prefetch(hashes, e)
            prefetch(counts, e)
        total += lengths[order[i]]
        out_o[i + 1] = total
    out_h = np.empty(n, np.uint64)
    out_c = np.empty(n, np.int64)
    out_a = np.empty(total, np.uint8)
    for i in range(n):
        if i + GATHER_AHEAD < n:
            prefetch(arena, starts[order[i + GATHER_AHEAD]])
        e = order[i]
        out_h[i] = hashes[e]
        out_c[i] = counts[e]
        s = starts[e]
        p = out_o[i]
        for k in range(out_o[i + 1] - p):
            out_a[np.uint64(p + k)] = arena[np.uint64(s + k)]
    return out_h, out_c, out_o, out_a


@njit(cache=True, nogil=True, error_model="numpy")
def _merge_pieces(h1, c1, o1, a1, h2, c2, o2, a2, out_h, out_c, out_o, out_a):
    """Merge two sorted piece runs into the ``out_*`` arrays, or only size the result when they
    are empty (one compiled function for both passes: a literal flag would compile it twice).
    Unsigned indices in the writes and the byte copies: 2.6x the speed of signed ones (numba
    wraps a negative index around, a compare and a select on every byte copied)."""
    emit = out_h.shape[0] > 0
    n1, n2 = h1.shape[0], h2.shape[0]
    i = j = m = 0
    p = 0
    while i < n1 or j < n2:
        if i >= n1:
            order = 1
        elif j >= n2:
            order = -1
        else:
            order = _compare(h1[i], a1, o1[i], o1[i + 1], h2[j], a2, o2[j], o2[j + 1])
        if order <= 0:
            s = o1[i]
            length = o1[i + 1] - s
            if emit:
                out_h[np.uint64(m)] = h1[i]
                out_c[np.uint64(m)] = c1[i] + (c2[j] if order == 0 else 0)
                for k in range(length):
                    out_a[np.uint64(p + k)] = a1[np.uint64(s + k)]
            p += length
            if order == 0:
                j += 1
            i += 1
        else:
            s = o2[j]
            length = o2[j + 1] - s
            if emit:
                out_h[np.uint64(m)] = h2[j]
                out_c[np.uint64(m)] = c2[j]
                for k in range(length):
                    out_a[np.uint64(p + k)] = a2[np.uint64(s + k)]
            p += length
            j += 1
        m += 1
        if emit:
            out_o[np.uint64(m)] = p
    return m, p


@njit(cache=True, nogil=True)
def merge_pieces(h1, c1, o1, a1, h2, c2, o2, a2):
    """Union of two piece runs, adding the counts of equal pieces (sized exactly)."""
    e_h = np.empty(0, np.uint64)
    e_c = np.empty(0, np.int64)
    e_o = np.empty(0, np.int64)
    e_a = np.empty(0, np.uint8)
    m, p = _merge_pieces(h1, c1, o1, a1, h2, c2, o2, a2, e_h, e_c, e_o, e_a)
    out_h = np.empty(m, np.uint64)
    out_c = np.empty(m, np.int64)
    out_o = np.zeros(m + 1, np.int64)
    out_a = np.empty(p, np.uint8)
    _merge_pieces(h1, c1, o1, a1, h2, c2, o2, a2, out_h, out_c, out_o, out_a)
    return out_h, out_c, out_o, out_a


@njit(cache=True, nogil=True, inline="always")
def _prefix_key(arena, offsets, i, skip):
    """Big-endian uint64 of bytes ``skip..skip+7`` of piece ``i`` (zero padded)."""
    a, b = offsets[i] + skip, offsets[i + 1]
    k = np.uint64(0)
    for j in range(8):
        k <<= np.uint64(8)
        if a + j < b:
            k |= np.uint64(arena[a + j])
    return k


def prefix_keys(arena, offsets, skip):
    """Big-endian uint64 of bytes ``skip..skip+7`` of every piece (zero padded): sorting by
    several of these orders pieces by their leading bytes. By numpy up to ``NUMPY_PIECES_MAX``
    pieces, beyond by :func:`kernel_prefix_keys`."""
    n = offsets.shape[0] - 1
    if not small(n, NUMPY_PIECES_MAX):
        return kernel_prefix_keys(arena, offsets, skip)
    starts = offsets[:-1] + skip
    ends = offsets[1:]
    out = np.zeros(n, np.uint64)
    for j in range(8):
        at = starts + j
        inside = at < ends
        byte = np.zeros(n, np.uint64)
        byte[inside] = arena[at[inside]]
        out = (out << np.uint64(8)) | byte
    return out


@njit(cache=True, nogil=True)
def kernel_prefix_keys(arena, offsets, skip):
    """:func:`prefix_keys` for any number of pieces."""
    n = offsets.shape[0] - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = _prefix_key(arena, offsets, i, skip)
    return out


def numpy_bucket_order(keys, bounds):
    """:func:`bucket_order` by a stable argsort (n log n, but nothing to compile)."""
    which = np.searchsorted(bounds, keys, side="right")
    edges = np.zeros(bounds.shape[0] + 2, np.int64)
    np.cumsum(np.bincount(which, minlength=bounds.shape[0] + 1), out=edges[1:])
    return np.argsort(which, kind="stable").astype(np.int64), edges


@njit(cache=True, nogil=True)
def bucket_order(keys, bounds):
    """(order, edges): ``order`` lists the entries bucket by bucket, each bucket in its original
    order, where entry i is in bucket ``searchsorted(bounds, keys[i], side="right")``; bucket b is
    ``order[edges[b]:edges[b + 1]]``. A counting sort: one pass to count, one to place, where a
    stable argsort of the bucket numbers cost n log n."""
    n = keys.shape[0]
    m = bounds.shape[0] + 1
    which = np.empty(n, np.int64)
    for i in range(n):
        which[i] = _bucket(bounds, keys[i])
    edges = np.zeros(m + 1, np.int64)
    for i in range(n):
        edges[which[i] + 1] += 1
    for b in range(m):
        edges[b + 1] += edges[b]
    fill = edges[:m].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        b = which[i]
        order[fill[b]] = i
        fill[b] += 1
    return order, edges


@njit(cache=True, nogil=True, inline="always")
def _bucket(bounds, key):
    """``searchsorted(bounds, key, side="right")``: how many bounds are at most ``key``. Written
    out, as ``_stable_argsort`` is: numba's ``np.searchsorted`` with a ``side`` cost 1.1 s of
    compiling on a first run."""
    lo = 0
    hi = bounds.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if bounds[mid] <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _reorder(order, lo, sub):
    """``order[lo:lo + len(sub)]`` permuted by a stable argsort of ``sub``; returns ``sub`` sorted."""
    n = sub.shape[0]
    p = stable_argsort(sub)
    part = np.empty(n, np.int64)
    for t in range(n):
        part[t] = order[lo + t]
    ordered = np.empty(n, np.uint64)
    for t in range(n):
        order[lo + t] = part[p[t]]
        ordered[t] = sub[p[t]]
    return ordered


@njit(cache=True, nogil=True)
def refine_ties(arena, offsets, order, first):
    """Turn ``order``, a stable sort of the pieces by ``first`` (their :func:`prefix_keys` at 0),
    into the stable sort by their bytes, a prefix first, in place.

    Only pieces that tie on their first eight bytes are compared further, eight bytes at a time
    and only while some piece of the group has bytes left; a group whose bytes are all used is
    ordered by length. The same order as ``np.lexsort`` over a key per eight bytes of the longest
    piece and the lengths, which sorts every piece by every key: 2-3x faster on the candidates
    of pruning, most of which differ in their first bytes."""
    n = order.shape[0]
    lo_s = np.empty(n // 2 + 1, np.int64)  # groups that tie so far (at most n / 2 of them)
    hi_s = np.empty(n // 2 + 1, np.int64)
    lo_next = np.empty(n // 2 + 1, np.int64)
    hi_next = np.empty(n // 2 + 1, np.int64)
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and first[order[j]] == first[order[i]]:
            j += 1
        if j - i > 1:
            lo_s[m] = i
            hi_s[m] = j
            m += 1
        i = j
    skip = 8
    while m > 0:
        m_next = 0
        for g in range(m):
            lo, hi = lo_s[g], hi_s[g]
            longest = 0
            for t in range(lo, hi):
                longest = max(longest, offsets[order[t] + 1] - offsets[order[t]])
            if longest <= skip:  # equal bytes, then zero padding: the shorter first
                lengths = np.empty(hi - lo, np.uint64)  # uint64 as the keys: one _reorder compiled
                for t in range(lo, hi):
                    lengths[t - lo] = offsets[order[t] + 1] - offsets[order[t]]
                _reorder(order, lo, lengths)
                continue
            keys = np.empty(hi - lo, np.uint64)
            for t in range(lo, hi):
                keys[t - lo] = _prefix_key(arena, offsets, order[t], skip)
            keys = _reorder(order, lo, keys)
            t = 0
            while t < hi - lo:
                u = t + 1
                while u < hi - lo and keys[u] == keys[t]:
                    u += 1
                if u - t > 1:
                    lo_next[m_next] = lo + t
                    hi_next[m_next] = lo + u
                    m_next += 1
                t = u
        lo_s, lo_next = lo_next, lo_s
        hi_s, hi_next = hi_next, hi_s
        m = m_next
        skip += 8
    return order


@njit(cache=True, nogil=True)
def reverse_pieces(arena, offsets):
    """Every piece's bytes reversed, in place of the piece (same offsets)."""
    out = np.empty_like(arena)
    for i in range(offsets.shape[0] - 1):
        a, b = offsets[i], offsets[i + 1]
        for k in range(b - a):
            out[a + k] = arena[b - 1 - k]
    return out
