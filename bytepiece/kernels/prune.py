"""Kernels for piece pruning: unigram Viterbi re-segmentation of pieces by a candidate set.

The candidates (all pieces that can still be in the vocabulary) go into one trie, built once; a
subset of them is "the tokenizer of the kept pieces" by giving every other candidate the score
``-inf``, which never wins a strict comparison, so the result is exactly that of a trie holding
only the subset. The trie is a hash of (node, byte) -> (child node, piece id) in interleaved
``uint64`` slots, with the root's 256 children in a dense array.

Segmentation follows the original tokenizer (DESIGN section 3): candidates for an end position
arrive longest first (a forward walk from increasing starts) and only a strictly better score
replaces the current best. A piece is segmented as one whole text: no normalization, no
chunking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FIB = np.uint64(0x9E3779B97F4A7C15)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _edge_key(node, byte):
    return (np.uint64(node) << np.uint64(8)) | np.uint64(byte)


@njit(cache=True, nogil=True)
def build_piece_trie(arena, starts, lengths, ids, bits):
    """Trie of the pieces ``arena[starts[i]:starts[i]+lengths[i]]`` storing ``ids[i]``.

    Returns ``(root, table, n_nodes)``: ``root[b]`` is the child of the root on byte ``b`` (its
    node number; nodes are >= 1), ``root[256 + b]`` the id of the one-byte piece ``b`` (-1 if
    none); ``table`` has ``2**bits`` slots ``[edge key + 1, child << 32 | (id + 1)]``.
    """
    cap = np.int64(1) << np.int64(bits)
    mask = cap - 1
    shift = np.uint64(64 - bits)
    table = np.zeros(2 * cap, np.uint64)
    root = np.full(512, -1, np.int64)
    n_nodes = 1
    for i in range(ids.shape[0]):
        a = starts[i]
        m = lengths[i]
        b0 = arena[a]
        if root[b0] < 0:
            root[b0] = n_nodes
            n_nodes += 1
        node = root[b0]
        if m == 1:
            root[256 + b0] = ids[i]
            continue
        for d in range(1, m):
            key = _edge_key(node, arena[a + d]) + np.uint64(1)
            s = np.int64((key * _FIB) >> shift)
            while table[2 * s] != key and table[2 * s] != np.uint64(0):
                s = (s + 1) & mask
            if table[2 * s] == np.uint64(0):
                table[2 * s] = key
                table[2 * s + 1] = np.uint64(n_nodes) << np.uint64(32)
                n_nodes += 1
            node = np.int64(table[2 * s + 1] >> np.uint64(32))
            if d == m - 1:
                table[2 * s + 1] = (table[2 * s + 1] & ~_LOW32) | np.uint64(ids[i] + 1)
    return root, table, n_nodes


@njit(cache=True, nogil=True)
def _viterbi(root, table, mask, shift, scores, text, a, b, best, back, tok):
    """Original-rule Viterbi of ``text[a:b]``; fills ``back``/``tok`` for positions 1..b-a."""
    m = b - a
    best[0] = 0.0
    for i in range(1, m + 1):
        best[i] = -np.inf
    for s in range(a, b):
        base = best[s - a]
        c = text[s]
        node = root[c]
        pid = root[256 + c]
        if pid >= 0:
            v = base + scores[pid]
            j = s + 1 - a
            if v > best[j]:
                best[j] = v
                back[j] = s - a
                tok[j] = pid
        for e in range(s + 1, b):
            key = _edge_key(node, text[e]) + np.uint64(1)
            h = np.int64((key * _FIB) >> shift)
            while True:
                k = table[2 * h]
                if k == key or k == np.uint64(0):
                    break
                h = (h + 1) & mask
            if k == np.uint64(0):
                break
            val = table[2 * h + 1]
            node = np.int64(val >> np.uint64(32))
            pid = np.int64(val & _LOW32) - 1
            if pid >= 0:
                v = base + scores[pid]
                j = e + 1 - a
                if v > best[j]:
                    best[j] = v
                    back[j] = s - a
                    tok[j] = pid


@njit(cache=True, nogil=True)
def resegment(root, table, bits, scores, arena, starts, lengths, which, weights, counter):
    """Segment pieces ``which[k]`` and add ``weights[k]`` to ``counter[id]`` for every part.

    Returns the number of pieces whose segmentation is the piece itself."""
    mask = (np.int64(1) << np.int64(bits)) - 1
    shift = np.uint64(64 - bits)
    longest = 1
    for k in range(which.shape[0]):
        longest = max(longest, lengths[which[k]])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int64)
    tok = np.empty(longest + 1, np.int64)
    whole = 0
    for k in range(which.shape[0]):
        i = which[k]
        a = starts[i]
        b = a + lengths[i]
        _viterbi(root, table, mask, shift, scores, arena, a, b, best, back, tok)
        j = b - a
        w = weights[k]
        if back[j] == 0:
            whole += 1
        while j > 0:
            counter[tok[j]] += w
            j = back[j]
    return whole


@njit(cache=True, nogil=True)
def segment(root, table, bits, scores, text):
    """Piece ids of one byte string (for tests)."""
    mask = (np.int64(1) << np.int64(bits)) - 1
    shift = np.uint64(64 - bits)
    m = text.shape[0]
    best = np.empty(m + 1, np.float64)
    back = np.empty(m + 1, np.int64)
    tok = np.empty(m + 1, np.int64)
    _viterbi(root, table, mask, shift, scores, text, 0, m, best, back, tok)
    k = 0
    j = m
    while j > 0:
        k += 1
        j = back[j]
    out = np.empty(k, np.int64)
    j = m
    while j > 0:
        k -= 1
        out[k] = tok[j]
        j = back[j]
    return out
