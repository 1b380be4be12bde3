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
from .prefetch import prefetch

EMPTY = np.uint64(0)  # no valid key is 0: the low byte holds the length, which is >= 1
MAX_ORDER = 7
_FIB = np.uint64(0x9E3779B97F4A7C15)
PREFIX3_MASK = ~((1 << 40) - 1) & ((1 << 64) - 1)  # the first three bytes of a key


#: positions ahead whose table slot ``count_grams`` prefetches
COUNT_AHEAD = 4


@njit(cache=True, nogil=True)
def count_grams(buf, bounds, weights, lo, hi, order, bits):
    """Count the maximal grams of chunks ``lo..hi-1``, each chunk ``weights[c]`` times, in an
    open-addressing table of ``2**bits`` slots that doubles when half full; returns the final
    table and its ``bits``. A slot is two ``uint64``, ``[key, count]`` (key 0 = empty), so a
    position costs one cache miss, not one for the key and one for the count in separate arrays
    (1.4x on the Linux sources).

    Counting first and sorting only the distinct keys (see ``table_counts``) costs about half
    of sorting every position's key: text repeats, so a job has far fewer distinct grams than
    positions."""
    cap = np.int64(1) << bits
    mask = cap - 1
    shift = np.uint64(64 - bits)
    table = np.zeros(2 * cap, np.uint64)
    n = 0
    low = np.uint64(64 - 8 * order)  # where a window's last byte goes
    for c in range(lo, hi):
        a, b = bounds[c], bounds[c + 1]
        weight = np.uint64(weights[c])
        # The bytes of the gram at p and of the gram COUNT_AHEAD positions on, each rolled one
        # byte a step (instead of packed anew from up to ``order`` loads); the table slot of the
        # one ahead is prefetched. Together 1.5x the speed on the Linux sources.
        window = np.uint64(0)
        for i in range(min(order, b - a)):
            window |= np.uint64(buf[a + i]) << np.uint64(56 - 8 * i)
        ahead = np.uint64(0)
        for i in range(min(order, b - a - COUNT_AHEAD)):
            ahead |= np.uint64(buf[a + COUNT_AHEAD + i]) << np.uint64(56 - 8 * i)
        for p in range(a, b):
            q = p + COUNT_AHEAD
            if q < b:
                slot = np.int64(((ahead | np.uint64(min(order, b - q))) * _FIB) >> shift)
                prefetch(table, 2 * slot)
                ahead = ahead << np.uint64(8)
                if q + order < b:
                    ahead |= np.uint64(buf[q + order]) << low
            key = window | np.uint64(min(order, b - p))
            window = window << np.uint64(8)
            if p + order < b:
                window |= np.uint64(buf[p + order]) << low
            s = np.int64((key * _FIB) >> shift)
            while True:
                k = table[2 * s]
                if k == key:
                    table[2 * s + 1] += weight
                    break
                if k == EMPTY:
                    table[2 * s] = key
                    table[2 * s + 1] = weight
                    n += 1
                    break
                s = (s + 1) & mask
            if 2 * n > cap:
                bits += 1
                table, cap, mask, shift = _doubled(table, cap, bits)
    return table, bits


@njit(cache=True, nogil=True)
def _doubled(table, cap, bits):
    """``count_grams``'s table rehashed into twice the slots (``2**bits``)."""
    grown_cap = np.int64(1) << bits
    grown_mask = grown_cap - 1
    shift = np.uint64(64 - bits)
    grown = np.zeros(2 * grown_cap, np.uint64)
    for t in range(cap):
        if table[2 * t] != EMPTY:
            s = np.int64((table[2 * t] * _FIB) >> shift)
            while grown[2 * s] != EMPTY:
                s = (s + 1) & grown_mask
            grown[2 * s] = table[2 * t]
            grown[2 * s + 1] = table[2 * t + 1]
    return grown, grown_cap, grown_mask, shift


@njit(cache=True, nogil=True)
def table_counts(table, bits, sorted_keys):
    """The counts of ``sorted_keys`` (all present) in a table made by ``count_grams``."""
    mask = (np.int64(1) << bits) - 1
    shift = np.uint64(64 - bits)
    out = np.empty(sorted_keys.shape[0], np.int64)
    for i in range(sorted_keys.shape[0]):
        key = sorted_keys[i]
        s = np.int64((key * _FIB) >> shift)
        while table[2 * s] != key:
            s = (s + 1) & mask
        out[i] = np.int64(table[2 * s + 1])
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
def _walk(keys, counts, order, min_count, out_keys, out_counts):
    """Walk the sorted maximal-gram run; emits into ``out_keys``/``out_counts`` unless they are
    empty (a counting pass). One compiled function serves both passes: a literal flag would
    compile it twice."""
    emit = out_keys.shape[0] > 0
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
    return _walk(keys, counts, order, min_count, e_u, e_i)


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
    _walk(keys, counts, order, min_count, out_keys, out_counts)
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
def prefetch_slot(table, cap, key):
    """Ask for the cache line of ``key``'s home slot ahead of a :func:`lookup` (no wait, no fault)."""
    prefetch(table, 2 * _home(key, cap))


@njit(cache=True, nogil=True, inline="always")
def lookup(table, vals, cap, key):
    """Score of ``key``, or -inf when it is not a kept n-gram.

    Slots index as unsigned: numba wraps a negative signed index around (a compare and a select
    on every load), and a slot is never negative. The emission loop alone ran 4% faster; the
    whole count-pieces phase, within the noise."""
    s = (((key * _FIB) >> np.uint64(32)) * np.uint64(cap)) >> np.uint64(32)  # _home, unsigned
    end = np.uint64(cap)
    while True:
        k = table[np.uint64(2) * s]
        if k == key:
            return vals[np.uint64(2) * s + np.uint64(1)]
        if k == EMPTY:
            return -np.inf
        s += np.uint64(1)
        if s == end:
            s = np.uint64(0)
