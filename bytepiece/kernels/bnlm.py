"""Kernels for the second training pass: BNLM Viterbi segmentation and piece counting.

Segmentation (DESIGN section 5, step 3): byte ``i`` of a chunk is in state ``j`` ("the (j+1)-th
byte of the current piece", capped at ``order - 1``) with emission score the conditional log
probability of the (j+1)-gram ending at ``i`` (``-inf`` if pruned). From state ``j`` the next
byte goes to state 0 or to ``min(j + 1, order - 1)``. The recursion is written to give the same
float64 values and the same choices as the original's numpy code: a candidate is
``previous + emission``, the lowest previous state wins an exact tie, a state no finite path
reaches points back to state 0 (``argmax`` of an all ``-inf`` column), and the final state is
the lowest-numbered best one.

Emissions come from the n-gram model of the first pass: dense tables for 1-grams (256) and
2-grams (65,536, -inf where pruned) and the score table of longer n-grams (``ngrams.lookup``).
The n-grams kept are closed under taking prefixes, so the walk from a start position stops at the
first missing length.

Pieces are counted in a :class:`.bytetable.ByteTable` keyed by their bytes. The chunks come
with weights: a training task segments each distinct chunk once and counts its pieces as many
times as the chunk occurs (``training.passes.distinct_chunk_jobs``).
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .bytetable import add, grow, needs_room, prefetch_entry, prefetch_slot as prefetch_piece, slot_shift
from .ngrams import lookup, prefetch_slot
from .runs import hash_bytes

NEG_INF = -np.inf


#: chunk bytes ahead whose n-gram lookups are prefetched (the score table is hundreds of MB, a
#: cache miss per lookup): on the Linux sources 4 makes the lookups 25% faster, 8 or 16 no more
PREFETCH_AHEAD = 4


@njit(cache=True, nogil=True, inline="always")
def _prefetch_grams(buf, p, b, order, table, cap):
    """Prefetch the score-table slots of the n-grams of length 3.. that start at ``buf[p]``."""
    top = min(order, b - p)
    if top < 3:
        return
    key = (np.uint64(buf[p]) << np.uint64(56)) | (np.uint64(buf[p + 1]) << np.uint64(48))
    for k in range(3, top + 1):
        key |= np.uint64(buf[p + k - 1]) << np.uint64(64 - 8 * k)
        prefetch_slot(table, cap, key | np.uint64(k))


@njit(cache=True, nogil=True)
def _emissions(buf, a, b, order, ensure_unicode, ones, twos, table, vals, cap, emit):
    """``emit[i, j]``: score of the (j+1)-gram ending at chunk byte ``i`` (or -inf).

    A loop of lookups only (the Viterbi runs after it): the lookups of different start
    positions are independent, so the CPU keeps many of their cache misses in flight, which a
    loop interleaving them with the Viterbi's dependent steps measured at half the speed."""
    m = b - a
    for i in range(m):
        for j in range(order):
            emit[i, j] = NEG_INF
    for s in range(min(PREFETCH_AHEAD, m)):
        _prefetch_grams(buf, a + s, b, order, table, cap)
    for s in range(m):
        if s + PREFETCH_AHEAD < m:
            _prefetch_grams(buf, a + s + PREFETCH_AHEAD, b, order, table, cap)
        top = min(order, m - s)
        b0 = np.int64(buf[a + s])
        emit[s, 0] = ones[b0]
        if top < 2:
            continue
        v = twos[(b0 << 8) | np.int64(buf[a + s + 1])]
        if v == NEG_INF:
            continue
        emit[s + 1, 1] = v
        key = (np.uint64(b0) << np.uint64(56)) | (np.uint64(buf[a + s + 1]) << np.uint64(48))
        for k in range(3, top + 1):
            key |= np.uint64(buf[a + s + k - 1]) << np.uint64(64 - 8 * k)
            v = lookup(table, vals, cap, key | np.uint64(k))
            if v == NEG_INF:
                break
            emit[s + k - 1, k - 1] = v
    if ensure_unicode:
        for i in range(m):
            if (buf[a + i] & 0xC0) == 0x80:
                emit[i, 0] = NEG_INF


@njit(cache=True, nogil=True)
def _viterbi_states(emit, m, order, routes, prev, cur, states):
    """Best state sequence of the first ``m`` rows of ``emit`` into ``states[:m]``."""
    last = order - 1
    for j in range(order):
        prev[j] = emit[0, j]
    for i in range(1, m):
        # state 0: from any state
        e = emit[i, 0]
        best = NEG_INF
        arg = 0
        for p in range(order):
            v = prev[p] + e
            if v > best:
                best = v
                arg = p
        cur[0] = best
        routes[i, 0] = arg
        # states 1..order-2: only from the state before
        for j in range(1, last):
            v = prev[j - 1] + emit[i, j]
            if v > NEG_INF:
                cur[j] = v
                routes[i, j] = j - 1
            else:
                cur[j] = NEG_INF
                routes[i, j] = 0
        # the capped state: from order-2 or from itself
        if last >= 1:
            e = emit[i, last]
            v1 = prev[last - 1] + e
            v2 = prev[last] + e
            best = NEG_INF
            arg = 0
            if v1 > best:
                best = v1
                arg = last - 1
            if v2 > best:
                best = v2
                arg = last
            cur[last] = best
            routes[i, last] = arg
        for j in range(order):
            prev[j] = cur[j]
    best = NEG_INF
    arg = 0
    for j in range(order):
        if prev[j] > best:
            best = prev[j]
            arg = j
    states[m - 1] = arg
    for i in range(m - 1, 0, -1):
        states[i - 1] = routes[i, states[i]]


@njit(cache=True, nogil=True, inline="always")
def _cut(buf, a, m, states, ends, hashes, k):
    """Write the ends in ``buf`` and the hashes of the pieces of the chunk of ``m`` bytes at
    ``a`` (a piece starts where ``states`` is 0) from index ``k`` on; returns the new count."""
    start = 0
    for i in range(1, m + 1):
        if i == m or states[i] == 0:
            ends[k] = a + i
            hashes[k] = hash_bytes(buf, a + start, a + i)
            k += 1
            start = i
    return k


#: pieces ahead whose table slot is prefetched; at half that distance the slot is read and the
#: fields of its entry are prefetched (a table of millions of pieces misses the cache on both)
PIECES_AHEAD = 8


@njit(cache=True, nogil=True)
def count_pieces(buf, bounds, weights, lo, hi, order, ensure_unicode, ones, twos, table, cap,
                 slots, hashes, starts, lengths, counts, arena, meta):
    """Segment chunks ``lo..hi-1`` with the BNLM Viterbi and count their pieces in the table
    (the arrays of a :class:`.bytetable.ByteTable`), each ``weights[c]`` times; returns the
    table arrays (grown when needed)."""
    vals = table.view(np.float64)
    longest = 1
    for c in range(lo, hi):
        longest = max(longest, bounds[c + 1] - bounds[c])
    emit = np.empty((longest, order), np.float64)
    routes = np.zeros((longest, order), np.int8)
    states = np.zeros(longest, np.int8)
    ends = np.empty(longest, np.int64)
    piece_hashes = np.empty(longest, np.uint64)
    prev = np.empty(order, np.float64)
    cur = np.empty(order, np.float64)
    seen = 0
    shift = slot_shift(slots)
    mask = slots.shape[0] - 1
    for c in range(lo, hi):
        a, b = bounds[c], bounds[c + 1]
        m = b - a
        if m == 0:
            continue
        # A chunk of m bytes adds at most m pieces and m arena bytes: make room once per chunk.
        if needs_room(slots, hashes, arena, meta, m, m):
            slots, hashes, starts, lengths, counts, arena = grow(slots, hashes, starts, lengths, counts, arena, meta, m, m)
            shift = slot_shift(slots)
            mask = slots.shape[0] - 1
        weight = weights[c]
        _emissions(buf, a, b, order, ensure_unicode, ones, twos, table, vals, cap, emit)
        _viterbi_states(emit, m, order, routes, prev, cur, states)
        # The pieces and their hashes first, so that their table lookups can be asked for ahead.
        k = _cut(buf, a, m, states, ends, piece_hashes, 0)
        for q in range(min(PIECES_AHEAD, k)):
            prefetch_piece(piece_hashes[q], shift, slots)
        start = a
        for q in range(k):
            if q + PIECES_AHEAD < k:
                prefetch_piece(piece_hashes[q + PIECES_AHEAD], shift, slots)
            if q + PIECES_AHEAD // 2 < k:
                prefetch_entry(piece_hashes[q + PIECES_AHEAD // 2], shift, slots, hashes, starts, lengths)
            add(buf, start, ends[q], piece_hashes[q], weight, slots, shift, mask, hashes, starts, lengths, counts, arena,
                meta)
            start = ends[q]
        seen += k * weight
    meta[2] += seen
    return slots, hashes, starts, lengths, counts, arena


@njit(cache=True, nogil=True)
def segment_pieces(buf, bounds, lo, hi, order, ensure_unicode, ones, twos, table, vals, cap):
    """Segment chunks ``lo..hi-1`` with the BNLM Viterbi, as :func:`count_pieces` does, and
    return every piece's end in ``buf`` and hash (``runs.hash_bytes``), in order: a piece starts
    where the one before it ends, or at its chunk's start. For small shards, whose pieces are
    counted in a dict (``training.passes``): this compiles in a fraction of the time of the
    table that :func:`count_pieces` counts in. ``vals`` is ``table.view(np.float64)``, and the
    work arrays are ``np.empty`` (every entry read is written first): a view and ``np.zeros``
    in the kernel cost 0.7 s more of compiling."""
    longest = 1
    for c in range(lo, hi):
        longest = max(longest, bounds[c + 1] - bounds[c])
    emit = np.empty((longest, order), np.float64)
    routes = np.empty((longest, order), np.int8)
    states = np.empty(longest, np.int8)
    prev = np.empty(order, np.float64)
    cur = np.empty(order, np.float64)
    total = bounds[hi] - bounds[lo]
    ends = np.empty(total, np.int64)
    hashes = np.empty(total, np.uint64)
    k = 0
    for c in range(lo, hi):
        a, b = bounds[c], bounds[c + 1]
        m = b - a
        if m == 0:
            continue
        _emissions(buf, a, b, order, ensure_unicode, ones, twos, table, vals, cap, emit)
        _viterbi_states(emit, m, order, routes, prev, cur, states)
        k = _cut(buf, a, m, states, ends, hashes, k)
    return ends[:k], hashes[:k]

