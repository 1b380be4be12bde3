"""Viterbi decoding and exact sampling of segmentations over a trie of reversed pieces.

A text is UTF-8 bytes; it is cut into chunks after every run of newlines (the original's
``.*\\n+|.+`` on NFC text: byte 0x0A never occurs inside a multi-byte character) and each chunk
is segmented independently, with its scores restarting from 0 exactly as the original does.

The forward pass of each mode over a chunk is in :mod:`.forward`; the kernels here cut the
text into chunks and windows, run the pass and emit the tokens.

Memory does not grow with a chunk: a chunk longer than the work arrays (``WINDOW`` bytes) is
segmented window by window (:func:`_next_window`). The forward pass runs on without a break;
after each window the back-pointer chains of the last ``max_len`` positions are followed to
their common ancestor, a position every final path goes through whatever comes next, and the
tokens up to it are final. Only if no such position appears within half a window (no real text
does this) is the chunk cut at a boundary of the best path so far and restarted there.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

from .chunking import chunk_end
from .copying import grown_copy
from .forward import MODE_TAGS, forward_for, forward_viterbi
from .rng import seed_state

__all__ = ["MODE_TAGS", "NO_STATE", "WINDOW", "encode_documents", "encode_segments", "viterbi_encode"]

#: work arrays hold at most this many positions; longer chunks go window by window
WINDOW = 1 << 20
NO_STATE = np.uint64(0)


@njit(cache=True, nogil=True)
def _emit(back, tok, piece, hi, lo, out, pos):
    """Write the piece ids of the path from ``lo`` to ``hi`` (following ``back`` from ``hi``,
    which reaches ``lo``) to ``out[pos:]`` in order; return the new end."""
    k = 0
    j = hi
    while j > lo:
        k += 1
        j = back[j]
    end = pos + k
    i = end - 1
    j = hi
    while j > lo:
        out[i] = piece[tok[j]]
        i -= 1
        j = back[j]
    return end


@njit(cache=True, nogil=True)
def _grown(out, pos, need):
    """``out`` with room for ``need`` more ids after ``pos`` (the ids so far kept)."""
    if pos + need <= out.shape[0]:
        return out
    bigger = np.empty(max(pos + need, out.shape[0] + out.shape[0] // 2 + 16), np.int32)
    for i in range(pos):  # a loop, not a slice copy: no shape check (and its error text) to compile
        bigger[i] = out[i]
    return bigger


@njit(cache=True, nogil=True)
def _common_ancestor(back, mark, lo, e, max_len):
    """The latest position every back-pointer chain from ``e - max_len + 1 .. e`` goes through
    (``lo`` at worst: the chains all reach it). ``mark`` is scratch of at least ``e + 1`` bytes."""
    first = max(lo, e - max_len + 1)
    for x in range(lo, e + 1):
        mark[x] = 0
    live = 0
    for x in range(first, e + 1):
        mark[x] = 1
        live += 1
    for x in range(e, lo - 1, -1):
        if mark[x]:
            if live == 1 or x == lo:
                return x
            mark[x] = 0
            live -= 1
            y = back[x]
            if not mark[y]:
                mark[y] = 1
                live += 1
    return lo


@njit(cache=True, nogil=True)
def _next_window(back, tok, piece, acc, mark, base, e, done, max_len, out, pos):
    """After a full window of a long chunk (positions up to ``e``, relative to ``base``; ids
    written up to ``done``): write the ids up to the chains' common ancestor and shift the
    arrays so that the last ``max_len`` values and everything after ``done`` stay. Returns
    ``(base, e, done, out, pos, restart)``; ``restart`` means no common ancestor appeared within
    half a window, so the chunk was cut on the best path so far and the forward pass restarts
    there (the caller counts it)."""
    cap = acc.shape[0] - 1
    p = _common_ancestor(back, mark, done, e, max_len)
    if p > done:
        out = _grown(out, pos, p - done)
        pos = _emit(back, tok, piece, p, done, out, pos)
        done = p
    keep = min(done, e - max_len)
    if keep < cap // 2:
        q = e
        while q > e - max_len and q > done:
            q = back[q]
        out = _grown(out, pos, q - done)
        pos = _emit(back, tok, piece, q, done, out, pos)
        return base + q, 0, 0, out, pos, True
    for i in range(e - keep + 1):
        acc[i] = acc[keep + i]
        tok[i] = tok[keep + i]
        back[i] = back[keep + i] - keep
    return base + keep, e - keep, done - keep, out, pos, False


@njit(cache=True, nogil=True)
def _work_arrays(longest, max_len, window):
    """Work arrays for chunks of up to ``min(longest, window)`` bytes (at least 4 * max_len:
    a window that small still moves forward by at least a piece at every cut)."""
    cap = max(1, min(longest, max(window, 4 * max_len)))
    return (np.empty(cap + 1, np.float64), np.empty(cap + 1, np.int32), np.empty(cap + 1, np.int32),
            np.empty(cap + 1, np.uint8), np.empty(max_len + 1, np.float64), np.empty(max_len + 1, np.int64))


@njit(cache=True, nogil=True)
def viterbi_encode(bc, pair, piece, scores, text):
    """Token ids of one UTF-8 text of at most ``WINDOW`` bytes (deterministic): the per-call
    fast path of ``Tokenizer.encode``, so it allocates as little as it can (one float array and
    one int array holding ``back``, ``tok`` and the output). ``scores`` is per cell
    (``Trie.cell_values(scores_by_id, -inf)``)."""
    n = text.shape[0]
    best = np.empty(n + 1, np.float64)
    ints = np.empty(3 * n + 2, np.int32)
    back = ints[: n + 1]
    tok = ints[n + 1 : 2 * n + 2]
    out = ints[2 * n + 2 :]
    pos = np.int64(0)
    a = np.int64(0)
    sums = np.empty(0, np.float64)
    cells = np.empty(0, np.int64)
    while a < n:
        b = chunk_end(text, a, n)
        forward_viterbi(bc, pair, scores, np.int64(0), 0.0, text, a, np.int64(1), b - a, best, back, tok, sums, cells,
                        NO_STATE, 0.0)
        pos = _emit(back, tok, piece, b - a, np.int64(0), out, pos)
        a = b
    return out[:pos]


@njit(cache=True, nogil=True)
def encode_segments(bc, pair, piece, values, mode_tag, max_len, alpha, buf, bounds, doc_segs, special, seed, doc_base,
                    bos, eos, window):
    """Encode documents made of segments into one packed array: (ids, token offsets), document
    d being ``ids[off[d]:off[d + 1]]``.

    Document d is segments ``doc_segs[d] .. doc_segs[d + 1] - 1`` in order; segment s is the
    text ``buf[bounds[s]:bounds[s + 1]]``, or when ``special`` is not empty and
    ``special[s] >= 0``, the single id ``special[s]`` (a special token matched in the text). The
    ``bos`` / ``eos`` ids go around each document (-1: none). Each document draws from its own
    generator seeded by (seed, ``doc_base + d``), and its segments share it in order: results do
    not depend on how documents are spread over threads or blocks. ``mode_tag`` (one of
    :data:`MODE_TAGS`) chooses the forward function and ``values`` is its per-cell table;
    ``alpha`` is read by the log sampler.
    Work arrays hold ``min(longest document, window)`` positions; the output grows as needed.
    Returns (ids, token offsets, chunks cut without a common ancestor: see ``_next_window``)."""
    n_docs = doc_segs.shape[0] - 1
    extra = (1 if bos >= 0 else 0) + (1 if eos >= 0 else 0)
    longest = 0
    total = np.int64(0)  # not the constant 0: _whole_documents would be compiled for Literal[int](0)
    one_segment_each = True
    for d in range(n_docs):
        size = bounds[doc_segs[d + 1]] - bounds[doc_segs[d]]
        longest = max(longest, size)
        total += size
        one_segment_each = one_segment_each and doc_segs[d + 1] == d + 1
    acc, back, tok, mark, sums, cells = _work_arrays(np.int64(longest), np.int64(max_len), np.int64(window))
    forward = forward_for(mode_tag)
    cap = acc.shape[0] - 1
    has_special = special.shape[0] > 0
    if one_segment_each and not has_special and longest <= cap:
        ids, token_offsets = _whole_documents(bc, pair, piece, values, mode_tag, max_len, alpha, buf, bounds, seed,
                                              doc_base, bos, eos, acc, back, tok, sums, cells, total)
        return ids, token_offsets, 0
    out = np.empty(total // 2 + extra * n_docs + 16, np.int32)
    token_offsets = np.empty(n_docs + 1, np.int64)
    token_offsets[0] = 0
    pos = np.int64(0)
    forced = 0
    for d in range(n_docs):
        out = _grown(out, pos, extra)
        if bos >= 0:
            out[pos] = bos
            pos += 1
        state = seed_state(seed, doc_base + d)
        for s in range(doc_segs[d], doc_segs[d + 1]):
            if has_special and special[s] >= 0:
                out = _grown(out, pos, np.int64(1))
                out[pos] = special[s]
                pos += 1
                continue
            a, n = bounds[s], bounds[s + 1]
            while a < n:  # chunk by chunk
                b = chunk_end(buf, a, n)
                if b - a <= cap:
                    out = _grown(out, pos, b - a)
                    state, _ = forward(bc, pair, values, max_len, alpha, buf, a, np.int64(1), b - a, acc, back, tok,
                                       sums, cells, state, 0.0)
                    pos = _emit(back, tok, piece, b - a, np.int64(0), out, pos)
                    a = b
                    continue
                # a chunk longer than the work arrays: window by window (see the module docstring)
                base, e, done, u_next = a, np.int64(0), np.int64(0), 0.0
                while True:
                    e1 = min(cap, b - base)
                    state, u_next = forward(bc, pair, values, max_len, alpha, buf, base, e + 1, e1, acc, back,
                                            tok, sums, cells, state, u_next)
                    e = e1
                    if base + e == b:
                        break
                    base, e, done, out, pos, restart = _next_window(back, tok, piece, acc, mark, base, e, done, max_len,
                                                                    out, pos)
                    forced += restart
                out = _grown(out, pos, e - done)
                pos = _emit(back, tok, piece, e, done, out, pos)
                a = b
        out = _grown(out, pos, extra)
        if eos >= 0:
            out[pos] = eos
            pos += 1
        token_offsets[d + 1] = pos
    if 2 * pos < out.shape[0]:
        return grown_copy(out, pos, pos), token_offsets, forced  # do not keep a buffer several times the ids alive
    return out[:pos], token_offsets, forced


@njit(cache=True, nogil=True)
def encode_documents(bc, pair, piece, values, mode_tag, max_len, alpha, buf, bounds, seed, doc_base, bos, eos,
                     window):
    """:func:`encode_segments` of documents that are one text segment each (``bounds``), none
    longer than ``max(window, 4 * max_len)`` bytes: the caller checks. Returns (ids, token
    offsets). A kernel of its own so that encoding lines, the common case, compiles none of the
    segments, special tokens and windows of :func:`encode_segments` (3 s of a first run's CPU)."""
    n_docs = bounds.shape[0] - 1
    longest = np.int64(0)
    total = np.int64(0)
    for d in range(n_docs):
        size = bounds[d + 1] - bounds[d]
        longest = max(longest, size)
        total += size
    acc, back, tok, _, sums, cells = _work_arrays(longest, np.int64(max_len), np.int64(window))
    return _whole_documents(bc, pair, piece, values, mode_tag, max_len, alpha, buf, bounds, seed, doc_base, bos, eos,
                            acc, back, tok, sums, cells, total)


@njit(cache=True, nogil=True)
def _whole_documents(bc, pair, piece, values, mode_tag, max_len, alpha, buf, bounds, seed, doc_base, bos, eos, acc, back,
                     tok, sums, cells, total):
    """:func:`encode_segments` where each document is one text segment that fits the work
    arrays (a batch of lines): the same results through a loop with no segments, windows or
    growth checks per chunk, which made many short documents (code) 10-14% slower."""
    forward = forward_for(mode_tag)
    n_docs = bounds.shape[0] - 1
    extra = (1 if bos >= 0 else 0) + (1 if eos >= 0 else 0)
    out = np.empty(total // 2 + extra * n_docs + 16, np.int32)
    token_offsets = np.empty(n_docs + 1, np.int64)
    token_offsets[0] = 0
    pos = np.int64(0)
    for d in range(n_docs):
        a, n = bounds[d], bounds[d + 1]
        if pos + (n - a) + extra > out.shape[0]:  # never more ids than bytes in a document
            out = _grown(out, pos, (n - a) + extra)
        if bos >= 0:
            out[pos] = bos
            pos += 1
        state = seed_state(seed, doc_base + d)
        while a < n:
            b = chunk_end(buf, a, n)
            state, _ = forward(bc, pair, values, max_len, alpha, buf, a, np.int64(1), b - a, acc, back, tok,
                               sums, cells, state, 0.0)
            pos = _emit(back, tok, piece, b - a, np.int64(0), out, pos)
            a = b
        if eos >= 0:
            out[pos] = eos
            pos += 1
        token_offsets[d + 1] = pos
    if 2 * pos < out.shape[0]:
        return grown_copy(out, pos, pos), token_offsets
    return out[:pos], token_offsets
