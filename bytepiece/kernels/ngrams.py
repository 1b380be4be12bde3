"""Kernels for the first training pass: byte n-gram counting and the n-gram score table.

Counting: every chunk position ``p`` contributes its *maximal gram*, the bytes ``t[p:p+L]`` with
``L = min(order, chunk_end - p)``, packed into one ``uint64`` key: byte ``i`` of the gram sits in
bits ``56 - 8*i .. 63 - 8*i`` (left aligned, zero padded) and ``L`` in the low byte. Keys sort in
lexicographic order of the byte strings (a string before its extensions), so in a sorted run the
count of a k-gram ``g`` is the sum of the counts of the maximal grams that start with ``g`` and
have length >= k, one contiguous stretch of the run.

The 1-gram and 2-gram counts are small dense tables (256 and 65,536 entries) that every task
accumulates for its shard (``prefix_counts``) and the reducer adds up. Everything longer is
derived from the merged run partition by partition: partitions are cut between keys that differ
in their first three bytes, so every n-gram of length >= 3 is counted whole inside one
partition, and ``derive_long`` walks a partition with a stack of open prefixes, emitting each
kept n-gram (count >= min_count) of length 3..order with its count and its parent's count (the
(k-1)-gram, from the stack, or from the dense 2-gram table for trigrams).

The score table of the kept long n-grams is open addressing over interleaved ``[key, score
bits]`` slots (one cache line holds four), with any capacity (``_home`` maps a hash onto it by a
multiply-shift instead of a power-of-two mask), so it can be sized to a load factor instead of the
next power of two.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

EMPTY = np.uint64(0)  # no valid key is 0: the low byte holds the length, which is >= 1
MAX_ORDER = 7
_FIB = np.uint64(0x9E3779B97F4A7C15)
PREFIX3_MASK = ~((1 << 40) - 1) & ((1 << 64) - 1)  # the first three bytes of a key


@njit(cache=True, nogil=True)
def gram_keys(buf, bounds, lo, hi, order):
    """Packed maximal-gram keys of every position of chunks ``lo..hi-1`` (in position order)."""
    a0 = bounds[lo]
    out = np.empty(bounds[hi] - a0, np.uint64)
    for c in range(lo, hi):
        a, b = bounds[c], bounds[c + 1]
        for p in range(a, b):
            m = min(order, b - p)
            key = np.uint64(0)
            for i in range(m):
                key |= np.uint64(buf[p + i]) << np.uint64(56 - 8 * i)
            out[p - a0] = key | np.uint64(m)
    return out


@njit(cache=True, nogil=True)
def prefix_counts(keys, counts, ones, twos):
    """Add the 1-gram and 2-gram counts that maximal grams ``keys`` (with ``counts``) imply:
    ``ones[b]`` and ``twos[(b1 << 8) | b2]``."""
    for i in range(keys.shape[0]):
        key = keys[i]
        c = counts[i]
        ones[np.int64(key >> np.uint64(56))] += c
        if (key & np.uint64(0xFF)) >= np.uint64(2):
            twos[np.int64(key >> np.uint64(48))] += c


@njit(cache=True, nogil=True, inline="always")
def _prefix_bits(depth):
    """Mask of the bits holding the first ``depth`` bytes of a key."""
    if depth <= 0:
        return np.uint64(0)
    return ~np.uint64(0) << np.uint64(64 - 8 * depth)


@njit(cache=True, nogil=True, inline="always")
def _close(stack, cur, depth, keep, min_count, out_keys, out_counts, emit, m):
    """Emit the open prefixes of ``cur`` longer than ``keep`` bytes (longest first) that are
    n-grams of length >= 3 counted at least ``min_count`` times; returns the new number emitted.
    A prefix is closed only once every key extending it has been seen, so its count is final."""
    while depth > keep:
        if depth >= 3:
            c = stack[depth]
            if c >= min_count:
                if emit:
                    out_keys[m] = (cur & _prefix_bits(depth)) | np.uint64(depth)
                    out_counts[m] = c
                m += 1
        depth -= 1
    return m


@njit(cache=True, nogil=True)
def _walk(keys, counts, order, min_count, out_keys, out_counts, emit):
    stack = np.zeros(order + 1, np.int64)  # stack[d]: count of the open prefix of length d
    cur = np.uint64(0)  # bytes of the open path
    depth = 0
    m = 0
    for e in range(keys.shape[0]):
        key = keys[e]
        length = np.int64(key & np.uint64(0xFF))
        common = 0
        limit = min(length, depth)
        while common < limit:
            shift = np.uint64(56 - 8 * common)
            if (key >> shift) & np.uint64(0xFF) != (cur >> shift) & np.uint64(0xFF):
                break
            common += 1
        m = _close(stack, cur, depth, common, min_count, out_keys, out_counts, emit, m)
        for d in range(common + 1, length + 1):
            stack[d] = 0
        cur = key & _prefix_bits(length)
        depth = length
        cnt = counts[e]
        for d in range(1, length + 1):
            stack[d] += cnt
    return _close(stack, cur, depth, 0, min_count, out_keys, out_counts, emit, m)


@njit(cache=True, nogil=True)
def count_long(keys, counts, order, min_count):
    """How many n-grams of length 3..order ``derive_long`` would emit for this partition."""
    e_u = np.empty(0, np.uint64)
    e_i = np.empty(0, np.int64)
    return _walk(keys, counts, order, min_count, e_u, e_i, False)


@njit(cache=True, nogil=True)
def derive_long(keys, counts, order, min_count, twos):
    """The kept n-grams of length 3..order of one partition (sorted maximal-gram run): packed
    keys, counts and their (k-1)-gram parents' counts.

    The walk emits in post-order, so read backwards every n-gram comes right after its parent's
    earlier descendants: its parent is the latest n-gram seen one level up (pruned n-grams have
    no kept descendants, so skipping them loses nothing). Trigrams' parents are 2-grams, whose
    counts ``twos`` hold for the whole corpus."""
    m = count_long(keys, counts, order, min_count)
    out_keys = np.empty(m, np.uint64)
    out_counts = np.empty(m, np.int64)
    _walk(keys, counts, order, min_count, out_keys, out_counts, True)
    parents = np.empty(m, np.int64)
    last = np.zeros(MAX_ORDER + 1, np.int64)
    for i in range(m - 1, -1, -1):
        key = out_keys[i]
        depth = np.int64(key & np.uint64(0xFF))
        if depth == 3:
            parents[i] = twos[np.int64(key >> np.uint64(48))]
        else:
            parents[i] = last[depth - 1]
        last[depth] = out_counts[i]
    return out_keys, out_counts, parents


# -- the score table of the kept n-grams of length >= 3 ----------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _home(key, cap):
    """Slot a key hashes to: the top 32 bits of a Fibonacci hash, scaled onto ``cap`` slots."""
    h = (key * _FIB) >> np.uint64(32)
    return np.int64((h * np.uint64(cap)) >> np.uint64(32))


@njit(cache=True, nogil=True)
def insert_scores(table, cap, keys, scores):
    """Insert keys with their scores into ``table`` (``2 * cap`` uint64: key, score bits)."""
    vals = table.view(np.float64)
    for i in range(keys.shape[0]):
        s = _home(keys[i], cap)
        while table[2 * s] != EMPTY:
            s += 1
            if s == cap:
                s = 0
        table[2 * s] = keys[i]
        vals[2 * s + 1] = scores[i]


@njit(cache=True, nogil=True, inline="always")
def lookup(table, vals, cap, key):
    """Score of ``key``, or -inf when it is not a kept n-gram."""
    s = _home(key, cap)
    while True:
        k = table[2 * s]
        if k == key:
            return vals[2 * s + 1]
        if k == EMPTY:
            return -np.inf
        s += 1
        if s == cap:
            s = 0
