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

Small inputs take the plain numpy/Python stand-ins beside each kernel (``numpy_count_grams``,
``numpy_prefix_counts``, ``numpy_count_long``, ``numpy_derive_long``, ``python_insert_scores``):
the same arrays, and nothing to compile, so a small training run (README's) never compiles these
kernels (about 6 s of a first run's CPU). The callers choose by size.
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


#: a maximal gram's bytes kept by a key of its length (index: the length, 0..8)
_LENGTH_MASKS = np.array([((1 << (8 * k)) - 1) << (64 - 8 * k) for k in range(9)], np.uint64)


def numpy_count_grams(buf, bounds, weights, lo, hi, order):
    """(sorted distinct keys, int64 counts): what ``count_grams`` and then ``table_counts`` of
    the sorted keys give, by numpy, so a small job compiles nothing; about twice the kernels'
    time (it sorts every position's key, where they sort only the distinct ones).

    The key of a position is the big-endian word of its next eight bytes with the bytes past its
    gram masked off. The positions of chunks of weight 1 are counted by sorting their keys; the
    few repeated chunks' keys are merged in with their weights."""
    start, end = int(bounds[lo]), int(bounds[hi])
    n = end - start
    sizes = np.diff(bounds[lo:hi + 1])
    room = np.repeat(bounds[lo + 1:hi + 1], sizes)  # each position's chunk end
    room -= np.arange(start, end, dtype=np.int64)
    length = np.minimum(room, order).astype(np.uint8)
    del room
    padded = np.zeros(n + 8, np.uint8)
    padded[:n] = buf[start:end]
    keys = np.ndarray((n,), ">u8", padded, 0, (1,)).astype(np.uint64)  # unaligned big-endian words
    del padded
    keys &= _LENGTH_MASKS[length]
    keys |= length.astype(np.uint64)
    del length
    w = weights[lo:hi]
    once = np.repeat(w == 1, sizes)
    repeated = ~once
    single = keys[once] if repeated.any() else keys
    single.sort()
    starts = _run_starts(single)
    out_keys, out_counts = single[starts], np.diff(np.append(starts, len(single))).astype(np.int64)
    if single is keys:
        return out_keys, out_counts
    del single, starts
    keys = np.concatenate([out_keys, keys[repeated]])
    counts = np.concatenate([out_counts, np.repeat(w, sizes)[repeated].astype(np.int64)])
    by_key = np.argsort(keys)
    keys = keys[by_key]
    starts = _run_starts(keys)
    return keys[starts], np.add.reduceat(counts[by_key], starts).astype(np.int64)


def _run_starts(sorted_keys):
    """Where each run of equal keys begins."""
    edge = np.empty(len(sorted_keys), np.bool_)
    edge[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=edge[1:])
    return np.flatnonzero(edge)


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


def numpy_prefix_counts(keys, counts, ones, twos):
    """``prefix_counts`` by numpy. Exact while a table entry's sum stays below 2**53 (``bincount``
    adds in float64): the counts of a shard's positions, which are far fewer."""
    ones += np.bincount((keys >> np.uint64(56)).astype(np.intp), counts, 256).astype(np.int64)
    two = (keys & np.uint64(0xFF)) >= np.uint64(2)
    twos += np.bincount((keys[two] >> np.uint64(48)).astype(np.intp), counts[two], 1 << 16).astype(np.int64)


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


def _numpy_long_grams(keys, counts, order, min_count):
    """The kept n-grams of length 3..order of a sorted maximal-gram run, one (keys, counts) pair
    per length, each in key order. A k-gram's count is the sum over the keys of length >= k that
    start with it, which are consecutive in the run."""
    lengths = keys & np.uint64(0xFF)
    grams = []
    for k in range(3, order + 1):
        longer = lengths >= np.uint64(k)
        prefixes = keys[longer] & _LENGTH_MASKS[k]
        if not len(prefixes):
            break
        starts = _run_starts(prefixes)
        sums = np.add.reduceat(counts[longer], starts)
        kept = sums >= min_count
        grams.append((prefixes[starts][kept] | np.uint64(k), sums[kept].astype(np.int64)))
    return grams


def numpy_count_long(keys, counts, order, min_count):
    """``count_long`` by numpy (a few times slower than the kernel, nothing to compile)."""
    return sum(len(k) for k, _ in _numpy_long_grams(keys, counts, order, min_count))


def numpy_derive_long(keys, counts, order, min_count, twos):
    """``derive_long`` by numpy: the same arrays in the same order (a few times slower than
    the kernel, nothing to compile).

    Post-order (a string after all its extensions, siblings in byte order) is the byte order of
    the strings with every missing byte taken as 0xFF, ties longest first: one sort of a key that
    fills the bytes past the n-gram with 0xFF and holds 255 - length in the low byte. The parents
    are read as the kernel reads them: an n-gram's is the count of the next one emitted a level
    up (0 if none), a trigram's its 2-gram's count in ``twos``."""
    grams = _numpy_long_grams(keys, counts, order, min_count)
    out_keys = np.concatenate([k for k, _ in grams]) if grams else np.empty(0, np.uint64)
    out_counts = np.concatenate([c for _, c in grams]) if grams else np.empty(0, np.int64)
    depth = out_keys & np.uint64(0xFF)
    post = np.argsort((out_keys | (~np.uint64(0) >> (depth << np.uint64(3)))) - depth)
    out_keys, out_counts, depth = out_keys[post], out_counts[post], depth[post]
    parents = np.zeros(len(out_keys), np.int64)
    below = np.flatnonzero(depth == np.uint64(3))  # where the n-grams one level up are
    parents[below] = twos[(out_keys[below] >> np.uint64(48)).astype(np.intp)]
    for d in range(4, order + 1):
        at = np.flatnonzero(depth == np.uint64(d))
        nxt = np.searchsorted(below, at, side="right")
        found = nxt < len(below)
        parents[at[found]] = out_counts[below[nxt[found]]]
        below = at
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


def python_insert_scores(table, cap, keys, scores):
    """``insert_scores`` in Python: the same slots (the same homes, probed in the same order),
    so the same table bit for bit; about 0.3 µs a key, nothing to compile. ``keys`` are never
    ``EMPTY``."""
    h = (keys * _FIB) >> np.uint64(32)
    slots = ((h * np.uint64(cap)) >> np.uint64(32)).astype(np.int64).tolist()  # _home
    taken = bytearray((table[0::2] != EMPTY).tobytes())
    for i, s in enumerate(slots):
        while taken[s]:
            s += 1
            if s == cap:
                s = 0
        taken[s] = 1
        slots[i] = s
    at = 2 * np.array(slots, np.int64)
    table[at] = keys
    table.view(np.float64)[at + 1] = scores


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
