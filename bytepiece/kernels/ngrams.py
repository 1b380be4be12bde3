"""Kernels for the first training pass: chunking and byte n-gram counting.

Chunking reproduces the original trainer's regexes on UTF-8 bytes (``.{0,N}\\n{1,K}|.{1,N}``, or
``\\d|[^\\n\\d]{0,N}\\n{1,K}|[^\\n\\d]{1,N}`` with isolated digits), where N counts characters
(bytes that are not UTF-8 continuation bytes).

Counting: every chunk position ``p`` contributes its *maximal gram*, the bytes
``t[p:p+L]`` with ``L = min(order, chunk_end - p)``, packed into one ``uint64`` key: byte ``i``
of the gram sits in bits ``56 - 8*i .. 63 - 8*i`` (left aligned, zero padded) and ``L`` in the low
byte. Keys therefore sort in lexicographic order of the byte strings (a string before its
extensions), so after a sort and run-length count the count of every k-gram ``g`` is the sum of
the counts of the maximal grams that have ``g`` as a prefix and length >= k, one contiguous run
in the sorted order. ``derive_ngrams`` walks the sorted keys once with a stack of open prefixes
and emits every n-gram of length 1..order that survives pruning. The count of the empty gram is
the number of positions, i.e. the sum of all counts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEWLINE = 10
EMPTY = np.uint64(0)  # no valid key is 0: the low byte holds the length, which is >= 1
MAX_ORDER = 7
_FIB = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def _char_end(buf, q, b):
    """One past the UTF-8 character starting at ``q`` (its continuation bytes are skipped)."""
    q += 1
    while q < b and (buf[q] & 0xC0) == 0x80:
        q += 1
    return q


@njit(cache=True, nogil=True, inline="always")
def _is_digit(buf, q, b, digits):
    """Whether the character at ``q`` is a Unicode decimal digit (``digits`` is a bitmap by code point)."""
    c = np.int64(buf[q])
    if c < 0x80:
        cp = c
    elif c < 0xE0:
        if q + 1 >= b:
            return False
        cp = ((c & 0x1F) << 6) | (np.int64(buf[q + 1]) & 0x3F)
    elif c < 0xF0:
        if q + 2 >= b:
            return False
        cp = ((c & 0x0F) << 12) | ((np.int64(buf[q + 1]) & 0x3F) << 6) | (np.int64(buf[q + 2]) & 0x3F)
    else:
        if q + 3 >= b:
            return False
        cp = (((c & 0x07) << 18) | ((np.int64(buf[q + 1]) & 0x3F) << 12)
              | ((np.int64(buf[q + 2]) & 0x3F) << 6) | (np.int64(buf[q + 3]) & 0x3F))
    if cp >= digits.shape[0]:
        return False
    return digits[cp] != 0


@njit(cache=True, nogil=True)
def chunk_boundaries(buf, text_ends, max_chars, max_newlines, digits):
    """Chunk boundaries of the texts ``buf[text_ends[i-1]:text_ends[i]]`` (the first starts at 0).

    Returns int64 positions ``[0, e1, e2, ..., len]``: chunk ``k`` is ``buf[bounds[k]:bounds[k+1]]``.
    ``digits`` is an empty array unless digits are isolated.
    """
    n = buf.shape[0]
    isolate = digits.shape[0] > 0
    out = np.empty(max(16, n // 32 + 2), np.int64)
    k = 0
    out[k] = 0
    k += 1
    a = 0
    for t in range(text_ends.shape[0]):
        b = text_ends[t]
        p = a
        while p < b:
            if isolate and _is_digit(buf, p, b, digits):
                q = _char_end(buf, p, b)
            else:
                q = p
                chars = 0
                while q < b and buf[q] != NEWLINE and chars < max_chars:
                    if isolate and _is_digit(buf, q, b, digits):
                        break
                    q = _char_end(buf, q, b)
                    chars += 1
                if q < b and buf[q] == NEWLINE:
                    nl = 0
                    while q < b and buf[q] == NEWLINE and nl < max_newlines:
                        q += 1
                        nl += 1
            if k >= out.shape[0]:
                grown = np.empty(out.shape[0] * 2, np.int64)
                grown[:k] = out[:k]
                out = grown
            out[k] = q
            k += 1
            p = q
        a = b
    return out[:k].copy()


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


@njit(cache=True, nogil=True)
def merge_counts(k1, c1, k2, c2):
    """Union of two sorted (key, count) runs, adding the counts of equal keys."""
    n1, n2 = k1.shape[0], k2.shape[0]
    i = j = m = 0
    while i < n1 and j < n2:
        if k1[i] < k2[j]:
            i += 1
        elif k2[j] < k1[i]:
            j += 1
        else:
            i += 1
            j += 1
        m += 1
    m += (n1 - i) + (n2 - j)
    keys = np.empty(m, np.uint64)
    counts = np.empty(m, np.int64)
    i = j = m = 0
    while i < n1 and j < n2:
        if k1[i] < k2[j]:
            keys[m] = k1[i]
            counts[m] = c1[i]
            i += 1
        elif k2[j] < k1[i]:
            keys[m] = k2[j]
            counts[m] = c2[j]
            j += 1
        else:
            keys[m] = k1[i]
            counts[m] = c1[i] + c2[j]
            i += 1
            j += 1
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
def _prefix_bits(depth):
    """Mask of the bits holding the first ``depth`` bytes of a key."""
    if depth <= 0:
        return np.uint64(0)
    return ~np.uint64(0) << np.uint64(64 - 8 * depth)


@njit(cache=True, nogil=True, inline="always")
def _close_prefixes(stack, cur, depth, keep, min_count, out_keys, out_counts, emit, m):
    """Emit the open prefixes of ``cur`` longer than ``keep`` bytes, longest first (length >= 2
    only when counted >= min_count); returns the new number emitted."""
    while depth > keep:
        c = stack[depth]
        if depth == 1 or c >= min_count:
            if emit:
                out_keys[m] = (cur & _prefix_bits(depth)) | np.uint64(depth)
                out_counts[m] = c
            m += 1
        depth -= 1
    return m


@njit(cache=True, nogil=True)
def _walk_ngrams(keys, counts, order, min_count, out_keys, out_counts, emit):
    """Emit (post-order) the n-grams of length 1..order with their counts; length >= 2 only when
    count >= min_count. Returns how many were (or would be) emitted."""
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
        m = _close_prefixes(stack, cur, depth, common, min_count, out_keys, out_counts, emit, m)
        for d in range(common + 1, length + 1):
            stack[d] = 0
        cur = key & _prefix_bits(length)
        depth = length
        cnt = counts[e]
        for d in range(1, length + 1):
            stack[d] += cnt
    return _close_prefixes(stack, cur, depth, 0, min_count, out_keys, out_counts, emit, m)


@njit(cache=True, nogil=True)
def derive_ngrams(keys, counts, order, min_count):
    """All 1-grams and the n-grams of length 2..order counted at least ``min_count`` times, as
    packed keys with their counts, from sorted maximal-gram (key, count) runs."""
    empty_k = np.empty(0, np.uint64)
    empty_c = np.empty(0, np.int64)
    m = _walk_ngrams(keys, counts, order, min_count, empty_k, empty_c, False)
    out_keys = np.empty(m, np.uint64)
    out_counts = np.empty(m, np.int64)
    _walk_ngrams(keys, counts, order, min_count, out_keys, out_counts, True)
    return out_keys, out_counts


# -- open-addressing table: packed n-gram key -> float64 ---------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _slot(key, shift):
    return np.int64((key * _FIB) >> shift)


@njit(cache=True, nogil=True)
def build_index(keys, bits):
    """Table of ``2**bits`` slots mapping each key to its index (linear probing, 0 = empty)."""
    cap = np.int64(1) << np.int64(bits)
    mask = cap - 1
    shift = np.uint64(64 - bits)
    table_keys = np.zeros(cap, np.uint64)
    table_index = np.full(cap, -1, np.int64)
    for i in range(keys.shape[0]):
        s = _slot(keys[i], shift)
        while table_keys[s] != EMPTY:
            s = (s + 1) & mask
        table_keys[s] = keys[i]
        table_index[s] = i
    return table_keys, table_index


@njit(cache=True, nogil=True)
def conditional_scores(keys, log_counts, log_total, table_keys, table_index, bits):
    """``log c(x1..xk) - log c(x1..xk-1)`` for every n-gram (``log_total`` for the empty prefix)."""
    mask = (np.int64(1) << np.int64(bits)) - 1
    shift = np.uint64(64 - bits)
    out = np.empty(keys.shape[0], np.float64)
    for i in range(keys.shape[0]):
        key = keys[i]
        depth = np.int64(key & np.uint64(0xFF))
        if depth == 1:
            out[i] = log_counts[i] - log_total
            continue
        parent = (key & _prefix_bits(depth - 1)) | np.uint64(depth - 1)
        s = _slot(parent, shift)
        while table_keys[s] != parent:
            s = (s + 1) & mask
        out[i] = log_counts[i] - log_counts[table_index[s]]
    return out


@njit(cache=True, nogil=True)
def score_table(table_keys, table_index, scores):
    """Interleaved ``[key, score bits]`` slots of the index table (one cache line per probe)."""
    cap = table_keys.shape[0]
    out = np.zeros(2 * cap, np.uint64)
    vals = out.view(np.float64)
    for s in range(cap):
        if table_keys[s] != EMPTY:
            out[2 * s] = table_keys[s]
            vals[2 * s + 1] = scores[table_index[s]]
    return out


@njit(cache=True, nogil=True)
def parent_counts(keys, counts, total):
    """Count of the (k-1)-gram prefix of every n-gram emitted by ``derive_ngrams`` (``total``
    for 1-grams). The emission is a post-order walk, so in reverse order every gram comes right
    after its parent's previous siblings' subtrees: its parent is the latest gram seen one level
    up (pruned grams have no kept descendants, so skipping them loses nothing)."""
    last = np.zeros(MAX_ORDER + 1, np.int64)
    last[0] = total
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0] - 1, -1, -1):
        depth = np.int64(keys[i] & np.uint64(0xFF))
        out[i] = last[depth - 1]
        last[depth] = counts[i]
    return out


@njit(cache=True, nogil=True)
def build_score_table(keys, scores, bits):
    """Interleaved ``[key, score bits]`` slots (linear probing, key 0 = empty) of ``2**bits``
    slots; the same layout as ``score_table`` without the intermediate index."""
    cap = np.int64(1) << np.int64(bits)
    mask = cap - 1
    shift = np.uint64(64 - bits)
    out = np.zeros(2 * cap, np.uint64)
    vals = out.view(np.float64)
    for i in range(keys.shape[0]):
        s = _slot(keys[i], shift)
        while out[2 * s] != EMPTY:
            s = (s + 1) & mask
        out[2 * s] = keys[i]
        vals[2 * s + 1] = scores[i]
    return out
