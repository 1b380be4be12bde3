"""Viterbi decoding and exact sampling of segmentations over a trie of reversed pieces.

A text is UTF-8 bytes; it is cut into chunks after every run of newlines (the original's
``.*\\n+|.+`` on NFC text: byte 0x0A never occurs inside a multi-byte character) and each chunk
is segmented independently, with its scores restarting from 0 exactly as the original does.

The kernels *pull*: for each end position e they walk the trie of reversed pieces backwards over
``text[e-1], text[e-2], ...``, which yields every piece ending at e (shortest first) together
with the already final value of its start. The best score stays in registers, so a Viterbi
candidate costs one load from the walk and an add-compare, with no store; only the trie walk
itself is a chain of dependent loads (measured 35 MB/s against 25 MB/s for pushing candidates
forward from each start). The sampler also writes each candidate's running total to a small
array that stays in L1 (see ``_sample_chunk_linear``).

Ties: the original keeps, at each end position, the first of equal candidates in its
longest-first order; seeing them shortest first, ``>=`` keeps the last one, which is the same.

Sampling keeps a running total of path weights per end position and picks the predecessor with
probability ``candidate / total``, which draws each segmentation with probability proportional
to ``prod p(piece) ** alpha`` exactly (forward filtering with the backward-sampling choice made
during the forward pass). The textbook alternative, a forward pass of totals only and a backward
pass that samples one token at a time, was measured at 0.54-0.57x of Viterbi against this one's
0.75-0.80x: its forward pass alone beats Viterbi, but each backward step waits for the previous
choice, so the trie walks of the backward pass run one after another instead of overlapping.
``LINEAR`` works with weights ``p ** alpha`` in the linear domain and rescales the window behind
e when a total leaves [1e-100, 1e100]; ``LOG`` sums relative to the best candidate, in units of
log p, for alphas so large that ``p ** alpha`` would underflow (any finite alpha works there).
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .chunking import chunk_end
from .rng import next_uniform, seed_state

VITERBI, LINEAR, LOG = 0, 1, 2
#: the name kernels written before chunking had one home import (kernels/streams.py); prefer
#: ``kernels.chunking.chunk_end``
_chunk_end = chunk_end
_RESCALE_HIGH = 1e100
_RESCALE_LOW = 1e-100


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
def _sample_chunk_linear(bc, pair, weights, max_len, text, a, b, acc, back, tok, state, sums, cells):
    """``weights[cell]``: p ** alpha of the piece ending at the cell, 0 where none ends.

    The walk records, for its j-th candidate (j = 0: the single byte, 1: two bytes, ...), the
    running total of path weights ``sums[j]`` and the cell ``cells[j]``; candidate j is then
    chosen with probability ``(sums[j] - sums[j-1]) / total`` as the first j whose running total
    exceeds ``u * total``, found by counting the totals at or below it (a count has no branch
    to mispredict; the totals only grow, so it is that first index). One uniform per position
    with a second candidate: the reservoir this replaces drew one per replacement and lost a
    third of the speed to the generator and to unpredictable replacement branches. Whether a
    uniform is drawn depends only on the text, never on earlier draws, so every draw stays
    independent. ``sums`` and ``cells`` hold at least ``max_len`` entries."""
    m = b - a
    acc[0] = 1.0
    base0 = bc[0]
    for e in range(1, m + 1):
        c = np.int64(text[a + e - 1])
        node = base0 + c
        total = acc[e - 1] * weights[node]
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[a + e - 2])]
            if node >= 0:
                sums[0] = total
                cells[0] = cell
                k = 1
                s = e - 2
                while True:
                    total += acc[s] * weights[node]
                    sums[k] = total
                    cells[k] = node
                    k += 1
                    s -= 1
                    if s < 0:
                        break
                    nxt = bc[2 * node] + text[a + s]
                    if bc[2 * nxt + 1] != node:
                        break
                    node = nxt
                u, state = next_uniform(state)
                target = u * total
                # At most k - 1: a product rounded up to ``total`` still picks the last one.
                j = 0
                for i in range(k - 1):
                    j += 1 if sums[i] <= target else 0
                start = e - 1 - j
                cell = cells[j]
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
def _sample_chunk_log(bc, pair, scores, alpha, text, a, b, acc, back, tok, state):
    """The sampler for alphas so large that ``p ** alpha`` underflows (or ``alpha * log p``
    overflows). ``scores[cell]`` is log p (-inf where no piece ends), as for Viterbi.

    ``acc[e]`` is ``log(Z[e]) / alpha``: the log-sum-exp of path weights divided by alpha, so it
    stays on the scale of a path's log probability (about the Viterbi score) for any finite
    alpha and any text length, where ``log Z`` itself would overflow for alpha near 1e308. At
    each end position the candidates are summed relative to the largest one seen so far
    (``top``): ``total = sum exp(alpha * (v - top))`` lies in [1, candidates], so nothing
    overflows, a candidate far below the best contributes exactly 0, and exact ties still share
    the probability (two equal candidates: 1/2 each). The reservoir is the linear sampler's,
    with ``kept`` rescaled together with ``total`` when ``top`` moves."""
    m = b - a
    acc[0] = 0.0
    u_next, state = next_uniform(state)
    base0 = bc[0]
    for e in range(1, m + 1):
        c = np.int64(text[a + e - 1])
        node = base0 + c
        top = acc[e - 1] + scores[node]
        total = 1.0
        kept = 1.0
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[a + e - 2])]
            s = e - 2
            if node >= 0:
                u = u_next
                u_next, state = next_uniform(state)
            while node >= 0:
                score = scores[node]
                if score > -np.inf:
                    v = acc[s] + score
                    if v > top:
                        shrink = np.exp(alpha * (top - v))
                        total = total * shrink + 1.0
                        kept *= shrink
                        top = v
                    else:
                        total += np.exp(alpha * (v - top))
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
        acc[e] = top + np.log(total) / alpha
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
def _encode_span(bc, pair, piece, values, mode, max_len, alpha, text, a, n, best, back, tok, sums, cells, out, pos,
                 state):
    """Segment text[a:n] chunk by chunk into ``out[pos:]``; return (new pos, rng state).
    ``best``, ``back``, ``tok`` are work arrays of at least the longest chunk + 1, ``sums`` and
    ``cells`` of at least ``max_len``; ``alpha`` is only read by the LOG sampler (the LINEAR one
    has it folded into ``values``)."""
    while a < n:
        b = chunk_end(text, a, n)
        if mode == VITERBI:
            _viterbi_chunk(bc, pair, values, text, a, b, best, back, tok)
        elif mode == LINEAR:
            state = _sample_chunk_linear(bc, pair, values, max_len, text, a, b, best, back, tok, state, sums, cells)
        else:
            state = _sample_chunk_log(bc, pair, values, alpha, text, a, b, best, back, tok, state)
        pos = _backtrack(back, tok, piece, b - a, out, pos)
        a = b
    return pos, state


@njit(cache=True, nogil=True)
def viterbi_encode(bc, pair, piece, scores, text):
    """Token ids of one UTF-8 text (deterministic); the per-call fast path, so it allocates as
    little as it can: one float array and one int array holding ``back``, ``tok`` and the output.
    ``scores`` is per cell (``Trie.cell_values(scores_by_id, -inf)``)."""
    n = text.shape[0]
    best = np.empty(n + 1, np.float64)
    ints = np.empty(3 * n + 2, np.int32)
    back = ints[: n + 1]
    tok = ints[n + 1 : 2 * n + 2]
    out = ints[2 * n + 2 :]
    pos = 0
    a = 0
    while a < n:
        b = chunk_end(text, a, n)
        _viterbi_chunk(bc, pair, scores, text, a, b, best, back, tok)
        pos = _backtrack(back, tok, piece, b - a, out, pos)
        a = b
    return out[:pos]


@njit(cache=True, nogil=True)
def sample_encode(bc, pair, piece, values, mode, max_len, alpha, text, seed):
    """Token ids of one UTF-8 text, sampled; ``values`` are per-cell weights p**alpha (LINEAR)
    or log p (LOG)."""
    n = text.shape[0]
    acc = np.empty(n + 1, np.float64)
    back = np.empty(n + 1, np.int32)
    tok = np.empty(n + 1, np.int32)
    out = np.empty(n, np.int32)
    sums = np.empty(max_len + 1, np.float64)
    cells = np.empty(max_len + 1, np.int64)
    pos, _ = _encode_span(bc, pair, piece, values, mode, max_len, alpha, text, 0, n, acc, back, tok, sums, cells, out, 0,
                          seed_state(seed, 0))
    return out[:pos]


@njit(cache=True, nogil=True)
def encode_documents(bc, pair, piece, values, mode, max_len, alpha, buf, offsets, seed, doc_base, bos, eos):
    """Encode the documents of ``buf`` (document i is ``buf[offsets[i]:offsets[i + 1]]``) into
    one packed array: (ids, token offsets), document i being ``ids[off[i]:off[i + 1]]``, with
    the ``bos`` / ``eos`` ids around each (-1: none). Documents are segmented in order, each
    writing right after the previous one (never more ids than bytes, so it cannot overtake the
    next document's bytes), so no second pass packs them. Each document draws from its own
    generator seeded by (seed, doc_base + i): results do not depend on how documents are spread
    over threads or blocks. Each mode has its own loop over the documents: with the mode test
    inside the loop, the compiled Viterbi ran about 10% slower (code, short lines)."""
    n_docs = offsets.shape[0] - 1
    extra = (1 if bos >= 0 else 0) + (1 if eos >= 0 else 0)
    longest = 0
    for i in range(n_docs):
        longest = max(longest, offsets[i + 1] - offsets[i])
    out = np.empty(buf.shape[0] + extra * n_docs, np.int32)
    token_offsets = np.empty(n_docs + 1, np.int64)
    token_offsets[0] = 0
    if mode == VITERBI:
        pos = _viterbi_documents(bc, pair, piece, values, buf, offsets, longest, bos, eos, out, token_offsets)
    elif mode == LINEAR:
        pos = _linear_documents(bc, pair, piece, values, max_len, buf, offsets, longest, seed, doc_base, bos, eos, out,
                                token_offsets)
    else:
        pos = _log_documents(bc, pair, piece, values, alpha, buf, offsets, longest, seed, doc_base, bos, eos, out,
                             token_offsets)
    if 2 * pos < out.shape[0]:
        return out[:pos].copy(), token_offsets  # do not keep a buffer several times the ids alive
    return out[:pos], token_offsets


@njit(cache=True, nogil=True)
def _viterbi_documents(bc, pair, piece, scores, buf, offsets, longest, bos, eos, out, token_offsets):
    best = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    pos = 0
    for i in range(offsets.shape[0] - 1):
        if bos >= 0:
            out[pos] = bos
            pos += 1
        a, n = offsets[i], offsets[i + 1]
        while a < n:
            b = chunk_end(buf, a, n)
            _viterbi_chunk(bc, pair, scores, buf, a, b, best, back, tok)
            pos = _backtrack(back, tok, piece, b - a, out, pos)
            a = b
        if eos >= 0:
            out[pos] = eos
            pos += 1
        token_offsets[i + 1] = pos
    return pos


@njit(cache=True, nogil=True)
def _linear_documents(bc, pair, piece, weights, max_len, buf, offsets, longest, seed, doc_base, bos, eos, out,
                      token_offsets):
    acc = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    sums = np.empty(max_len + 1, np.float64)
    cells = np.empty(max_len + 1, np.int64)
    pos = 0
    for i in range(offsets.shape[0] - 1):
        if bos >= 0:
            out[pos] = bos
            pos += 1
        state = seed_state(seed, doc_base + i)
        a, n = offsets[i], offsets[i + 1]
        while a < n:
            b = chunk_end(buf, a, n)
            state = _sample_chunk_linear(bc, pair, weights, max_len, buf, a, b, acc, back, tok, state, sums, cells)
            pos = _backtrack(back, tok, piece, b - a, out, pos)
            a = b
        if eos >= 0:
            out[pos] = eos
            pos += 1
        token_offsets[i + 1] = pos
    return pos


@njit(cache=True, nogil=True)
def _log_documents(bc, pair, piece, scores, alpha, buf, offsets, longest, seed, doc_base, bos, eos, out, token_offsets):
    acc = np.empty(longest + 1, np.float64)
    back = np.empty(longest + 1, np.int32)
    tok = np.empty(longest + 1, np.int32)
    pos = 0
    for i in range(offsets.shape[0] - 1):
        if bos >= 0:
            out[pos] = bos
            pos += 1
        state = seed_state(seed, doc_base + i)
        a, n = offsets[i], offsets[i + 1]
        while a < n:
            b = chunk_end(buf, a, n)
            state = _sample_chunk_log(bc, pair, scores, alpha, buf, a, b, acc, back, tok, state)
            pos = _backtrack(back, tok, piece, b - a, out, pos)
            a = b
        if eos >= 0:
            out[pos] = eos
            pos += 1
        token_offsets[i + 1] = pos
    return pos
