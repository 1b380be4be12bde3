"""Viterbi decoding and exact sampling of segmentations over a trie of reversed pieces.

A text is UTF-8 bytes; it is cut into chunks after every run of newlines (the original's
``.*\\n+|.+`` on NFC text: byte 0x0A never occurs inside a multi-byte character) and each chunk
is segmented independently, with its scores restarting from 0 exactly as the original does.

The kernels *pull*: for each end position e they walk the trie of reversed pieces backwards over
``text[e-1], text[e-2], ...``, which yields every piece ending at e (shortest first) together
with the already final value of its start. The best score (or the running total of path weights)
stays in registers, so a candidate costs one load from the walk and an add-compare, with no store
per candidate; only the trie walk itself is a chain of dependent loads (measured 35 MB/s against
25 MB/s for pushing candidates forward from each start).

Ties: the original keeps, at each end position, the first of equal candidates in its
longest-first order; seeing them shortest first, ``>=`` keeps the last one, which is the same.

Sampling keeps a running total of path weights per end position and replaces the chosen
predecessor with probability ``candidate / total`` (reservoir style), which draws each
segmentation with probability proportional to ``prod p(piece) ** alpha`` exactly (forward
filtering with the backward-sampling choice made during the forward pass).
``LINEAR`` works with weights ``p ** alpha`` in the linear domain and rescales the window behind
e when a total leaves [1e-100, 1e100]; ``LOG`` uses log-sum-exp for alphas so large that
``p ** alpha`` would underflow.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .rng import next_uniform, seed_state

VITERBI, LINEAR, LOG = 0, 1, 2
NEWLINE = 10
_RESCALE_HIGH = 1e100
_RESCALE_LOW = 1e-100


@njit(cache=True, nogil=True, inline="always")
def _chunk_end(text, a, n):
    i = a
    while i < n and text[i] != NEWLINE:
        i += 1
    while i < n and text[i] == NEWLINE:
        i += 1
    return i


@njit(cache=True, nogil=True)
def _viterbi_chunk(bc, pair, scores, text, a, b, best, back, tok):
    """``scores[cell]``: log p of the piece ending at the cell, -inf where none ends (so the
    comparison rejects non-terminal cells without a separate branch). Every single byte is a
    piece, so the first step of each walk always succeeds and the second is one lookup in
    ``pair`` (see ``Trie.pair_cells``); the candidate update is written out at each step."""
    m = b - a
    best[0] = 0.0
    base0 = bc[0]
    for e in range(1, m + 1):
        c = np.int64(text[a + e - 1])
        node = base0 + c
        top = best[e - 1] + scores[node]
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[a + e - 2])]
            if node >= 0:
                v = best[e - 2] + scores[node]
                if v >= top:
                    top = v
                    start = e - 2
                    cell = node
                for s in range(e - 3, -1, -1):
                    nxt = bc[2 * node] + text[a + s]
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
        tok[e] = cell


@njit(cache=True, nogil=True)
def _sample_chunk_linear(bc, pair, weights, max_len, text, a, b, acc, back, tok, state):
    """``weights[cell]``: p ** alpha of the piece ending at the cell, 0 where none ends.

    Reservoir with jumps: replacing the kept candidate with probability x / total at every
    candidate means that, after a replacement at running total W, no further replacement happens
    before the total reaches W' with probability W / W'. So one uniform u per replacement decides
    the next one (the first total with ``total * u > W``), and a position with k candidates draws
    O(log k) random numbers instead of k, while the distribution stays exact. The next uniform is
    drawn one replacement ahead, off the comparison's dependency chain.
    """
    m = b - a
    acc[0] = 1.0
    u_next, state = next_uniform(state)
    base0 = bc[0]
    for e in range(1, m + 1):
        # the single byte ending at e is always a piece: it opens the reservoir
        c = np.int64(text[a + e - 1])
        node = base0 + c
        total = acc[e - 1] * weights[node]
        kept = total
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[a + e - 2])]
            s = e - 2
            if node >= 0:
                # A second candidate: from here the reservoir needs a uniform. (Whether one is
                # drawn depends only on the text, never on earlier draws, so skipping the draw
                # where a byte is the only candidate keeps every draw independent.)
                u = u_next
                u_next, state = next_uniform(state)
            while node >= 0:
                total += acc[s] * weights[node]
                if total * u > kept:
                    start = s
                    cell = node
                    kept = total
                    u = u_next
                    u_next, state = next_uniform(state)
                s -= 1
                if s < 0:
                    break
                nxt = bc[2 * node] + text[a + s]
                if bc[2 * nxt + 1] != node:
                    break
                node = nxt
        back[e] = start
        tok[e] = cell
        if total > _RESCALE_HIGH or total < _RESCALE_LOW:
            inv = 1.0 / total
            for i in range(max(0, e - max_len), e):
                acc[i] *= inv
            total = 1.0
        acc[e] = total
    return state


@njit(cache=True, nogil=True)
def _sample_chunk_log(bc, pair, alpha_scores, text, a, b, acc, back, tok, state):
    """``alpha_scores[cell]``: alpha * log p of the piece ending at the cell, -inf where none ends."""
    m = b - a
    acc[0] = 0.0
    for e in range(1, m + 1):
        total = -np.inf
        start = 0
        cell = 0
        node = 0
        for s in range(e - 1, -1, -1):
            nxt = bc[2 * node] + text[a + s]
            if bc[2 * nxt + 1] != node:
                break
            node = nxt
            if alpha_scores[node] == -np.inf:
                continue
            w = acc[s] + alpha_scores[node]
            if total == -np.inf:
                total = w
            elif total > w:
                total = total + np.log1p(np.exp(w - total))
            else:
                total = w + np.log1p(np.exp(total - w))
            u, state = next_uniform(state)
            if u < np.exp(w - total):
                start = s
                cell = node
        back[e] = start
        tok[e] = cell
        acc[e] = total
    return state


@njit(cache=True, nogil=True)
def _backtrack(back, tok, piece, m, out, pos):
    """Write the chunk's piece ids (ending at m) to ``out[pos:]`` in order; return the new end."""
    k = 0
    j = m
    while j > 0:
        k += 1
        j = back[j]
    j = m
    end = pos + k
    i = end - 1
    while j > 0:
        out[i] = piece[tok[j]]
        i -= 1
        j = back[j]
    return end


@njit(cache=True, nogil=True)
def _encode_span(bc, pair, piece, values, mode, max_len, text, a, n, best, back, tok, out, pos, state):
    """Segment text[a:n] chunk by chunk into ``out[pos:]``; return (new pos, rng state).
    ``best``, ``back``, ``tok`` are work arrays of at least the longest chunk + 1."""
    while a < n:
        b = _chunk_end(text, a, n)
        if mode == VITERBI:
            _viterbi_chunk(bc, pair, values, text, a, b, best, back, tok)
        elif mode == LINEAR:
            state = _sample_chunk_linear(bc, pair, values, max_len, text, a, b, best, back, tok, state)
        else:
            state = _sample_chunk_log(bc, pair, values, text, a, b, best, back, tok, state)
        pos = _backtrack(back, tok, piece, b - a, out, pos)
        a = b
    return pos, state


@njit(cache=True, nogil=True)
def viterbi_encode(bc, pair, piece, scores, text):
    """Token ids of one UTF-8 text (deterministic); the per-call fast path. ``scores`` is per
    cell (``Trie.cell_values(scores_by_id, -inf)``)."""
    n = text.shape[0]
    best = np.empty(n + 1, np.float64)
    back = np.empty(n + 1, np.int32)
    tok = np.empty(n + 1, np.int32)
    out = np.empty(n, np.int32)
    pos, _ = _encode_span(bc, pair, piece, scores, VITERBI, 0, text, 0, n, best, back, tok, out, 0, np.uint64(0))
    return out[:pos]


@njit(cache=True, nogil=True)
def sample_encode(bc, pair, piece, values, mode, max_len, text, seed):
    """Token ids of one UTF-8 text, sampled; ``values`` are per-cell weights (LINEAR) or
    alpha*scores (LOG)."""
    n = text.shape[0]
    acc = np.empty(n + 1, np.float64)
    back = np.empty(n + 1, np.int32)
    tok = np.empty(n + 1, np.int32)
    out = np.empty(n, np.int32)
    pos, _ = _encode_span(bc, pair, piece, values, mode, max_len, text, 0, n, acc, back, tok, out, 0, seed_state(seed, 0))
    return out[:pos]


@njit(cache=True, nogil=True)
def encode_documents(bc, pair, piece, values, mode, max_len, buf, offsets, lo, hi, seed, out, counts, doc_base):
    """Encode documents lo..hi-1 of ``buf`` (split by ``offsets``); document i writes its ids at
    ``out[offsets[i]:]`` (it has at most as many tokens as bytes) and its count in ``counts[i]``.
    Each document draws from its own generator seeded by (seed, doc_base + i), so results do not
    depend on how documents are spread over threads or blocks."""
    longest = 0
    for i in range(lo, hi):
        longest = max(longest, offsets[i + 1] - offsets[i])
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    for i in range(lo, hi):
        a, n = offsets[i], offsets[i + 1]
        state = seed_state(seed, doc_base + i)
        pos, _ = _encode_span(bc, pair, piece, values, mode, max_len, buf, a, n, best, back, tok, out, a, state)
        counts[i] = pos - a


@njit(cache=True, nogil=True)
def gather_documents(out, offsets, counts, bos, eos):
    """Pack per-document results into one flat array plus token offsets, adding bos/eos ids (-1: none)."""
    n_docs = counts.shape[0]
    extra = (1 if bos >= 0 else 0) + (1 if eos >= 0 else 0)
    token_offsets = np.zeros(n_docs + 1, np.int64)
    for i in range(n_docs):
        token_offsets[i + 1] = token_offsets[i] + counts[i] + extra
    flat = np.empty(token_offsets[n_docs], np.int32)
    for i in range(n_docs):
        p = token_offsets[i]
        if bos >= 0:
            flat[p] = bos
            p += 1
        src = offsets[i]
        for k in range(counts[i]):
            flat[p + k] = out[src + k]
        if eos >= 0:
            flat[p + counts[i]] = eos
    return flat, token_offsets
