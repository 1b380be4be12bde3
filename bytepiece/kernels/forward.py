"""The forward passes of segmentation, one per mode: Viterbi, and sampling in the linear or the
log domain. The kernels of :mod:`.encode` call them over each chunk.

The kernels *pull*: for each end position e they walk the trie of reversed pieces backwards over
``text[e-1], text[e-2], ...``, which yields every piece ending at e (shortest first) together
with the already final value of its start. The best score stays in registers, so a Viterbi
candidate costs one load from the walk and an add-compare, with no store; only the trie walk
itself is a chain of dependent loads (measured 35 MB/s against 25 MB/s for pushing candidates
forward from each start). The sampler also writes each candidate's running total to a small
array that stays in L1 (see :func:`forward_linear`).

Ties: the original keeps, at each end position, the first of equal candidates in its
longest-first order; seeing them shortest first, ``>=`` keeps the last one, which is the same.

Sampling keeps a running total of path weights per end position and picks the predecessor with
probability ``candidate / total``, which draws each segmentation with probability proportional
to ``prod p(piece) ** alpha`` exactly (forward filtering with the backward-sampling choice made
during the forward pass). The textbook alternative, a forward pass of totals only and a backward
pass that samples one token at a time, was measured at 0.54-0.57x of Viterbi against this one's
0.75-0.80x: its forward pass alone beats Viterbi, but each backward step waits for the previous
choice, so the trie walks of the backward pass run one after another instead of overlapping.
(Since the unsigned indices below, which sped up Viterbi more, this one runs at 0.70-0.77x of
Viterbi in the kernels. Most of the difference is the choice itself: without the uniform and the
count the same walk ran at 0.86-0.91x; finding the chosen cell by walking again instead of
recording ``cells`` ran at 0.44-0.49x. With Viterbi's two walks in step, that forward pass of
totals runs at 1.06-1.16x of Viterbi, and a backward pass that walks again only at the sampled
positions and stops at the chosen candidate brings the whole to 0.73-0.81x on zh and en but
0.57-0.73x on code: its cost follows the sampled tokens, which alpha 0.1 makes short, 0.6 per
byte of code; this one's follows positions. Not kept: bench/RESULTS.md, eighth round.)
``LINEAR`` works with weights ``p ** alpha`` in the linear domain and rescales the window behind
e when a total leaves [1e-100, 1e100]; ``LOG`` sums relative to the best candidate, in units of
log p, for alphas so large that ``p ** alpha`` would underflow (any finite alpha works there).

What the compiled code depends on (measured by same-process A/B of the kernels, issue 23):

- The forward loops run from the constant 1 and skip the positions before ``e0`` (only a window
  after the first starts later). From a start known at compile time LLVM proves every position
  positive, so numba's wraparound of negative indices (a compare and a select, and the array's
  length kept in a register) drops out of ``acc[e - 1]``, ``back[e]``, ``tok[e]`` and ``acc[e]``;
  from ``range(e0, e1 + 1)`` it did not, and the sampler ran 5-8% slower.
- Trie cells and text offsets index as unsigned (``bc[np.uint64(2 * node)]``): numba wraps a
  negative signed index around, a compare and a select on the address of each load, and in the
  walk those sit on its chain of dependent loads. The arrays are checked when a model is loaded
  (``tokenizer.arrays.check_bounds``: every base and cell is >= 0 and in bounds), so no index is
  negative. Viterbi 1.35x and the sampler 1.3-1.45x faster (zh, en, code).
- The forward functions use ``error_model="numpy"``: the sampler's rescaling division then has
  no zero-division check (its total is never 0), whose exception path kept numba from pruning an
  increment and a decrement of every array argument's reference count on each call: 7% of
  sampling short lines (code).
- A kernel gets the forward function of its mode from ``forward_for(mode_tag)``, an overload
  inlined into the kernel that returns the function itself, so the kernel calls it directly. The
  overload that made the call (``forward(mode_tag, ...)``) cost each call of the sampler, which
  LLVM does not inline, another round of reference counting: 8-10% on code. A forward function
  passed to the kernel as an argument is no alternative: a kernel with a function in its
  signature is not loaded from numba's cache by the next process (it compiles again each time).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import njit

from .rng import next_uniform
from .splitmix import RESCALE_HIGH, RESCALE_LOW

_RESCALE_HIGH = RESCALE_HIGH
_RESCALE_LOW = RESCALE_LOW


@njit(cache=True, nogil=True, error_model="numpy")
def forward_viterbi(bc, pair, scores, max_len, alpha, text, base, e0, e1, best, back, tok, sums, cells, state, u_next):  # noqa: C901 - one loop over positions, two walks in step: the algorithm
    """Viterbi at positions ``e0..e1`` (relative to ``base``: position e ends at
    ``text[base + e - 1]``) given ``best[0..e0-1]``; ``e0 == 1`` starts a chunk. Every forward
    function takes the same arguments and returns ``(state, u_next)``, the generator state and
    the uniform the log sampler draws ahead (the Viterbi draws none). ``scores[cell]``: log p of
    the piece ending at the cell, -inf where none ends (so the comparison rejects non-terminal
    cells without a separate branch). Every single byte is a piece, so the first step of each
    walk always succeeds and the second is one lookup in ``pair`` (see ``Trie.pair_cells``); the
    candidate update is written out at each step.

    Positions go in pairs whose walks run in step: the walk is a chain of dependent loads, and
    two independent chains keep two loads in flight (1.08x on zh, 1.22x on en, 1.10x on code, the
    same ids). Only the one-byte candidate of the second position needs the first's result; it
    comes last and replaces only a strictly better score, which keeps the longest of equal
    candidates as ``>=`` shortest first does. (The same loop with the walks' tails in an inlined
    helper ran at 0.55-0.84x.)"""
    if e0 == 1:
        best[0] = 0.0
    base0 = bc[0]
    e = e0
    while e <= e1:
        c = np.int64(text[np.uint64(base + e - 1)])
        if e == e1 or e < 2:  # one position alone
            node = base0 + c
            top = best[e - 1] + scores[np.uint64(node)]
            start = e - 1
            cell = node
            if e >= 2:
                node = pair[(c << 8) | np.int64(text[np.uint64(base + e - 2)])]
                if node >= 0:
                    v = best[e - 2] + scores[np.uint64(node)]
                    if v >= top:
                        top = v
                        start = e - 2
                        cell = node
                    for s in range(e - 3, -1, -1):
                        nxt = bc[np.uint64(2 * node)] + text[np.uint64(base + s)]
                        if bc[np.uint64(2 * nxt + 1)] != node:
                            break
                        node = nxt
                        v = best[s] + scores[np.uint64(node)]
                        if v >= top:
                            top = v
                            start = s
                            cell = node
            best[e] = top
            back[e] = start
            tok[e] = cell
            e += 1
            continue
        # positions e (walk a) and e + 1 (walk b)
        c_b = np.int64(text[np.uint64(base + e)])
        cell = base0 + c
        top = best[e - 1] + scores[np.uint64(cell)]
        start = e - 1
        node = pair[(c << 8) | np.int64(text[np.uint64(base + e - 2)])]
        node_b = pair[(c_b << 8) | c]
        single_b = base0 + c_b
        top_b = -np.inf
        start_b = e
        cell_b = single_b
        alive = node >= 0
        alive_b = node_b >= 0
        if alive:
            v = best[e - 2] + scores[np.uint64(node)]
            if v >= top:
                top = v
                start = e - 2
                cell = node
        if alive_b:
            top_b = best[e - 1] + scores[np.uint64(node_b)]
            start_b = e - 1
            cell_b = node_b
        s = e - 3
        s_b = e - 2
        while alive and alive_b and s >= 0:
            nxt = bc[np.uint64(2 * node)] + text[np.uint64(base + s)]
            nxt_b = bc[np.uint64(2 * node_b)] + text[np.uint64(base + s_b)]
            if bc[np.uint64(2 * nxt + 1)] == node:
                node = nxt
                v = best[s] + scores[np.uint64(node)]
                if v >= top:
                    top = v
                    start = s
                    cell = node
                s -= 1
            else:
                alive = False
            if bc[np.uint64(2 * nxt_b + 1)] == node_b:
                node_b = nxt_b
                v = best[s_b] + scores[np.uint64(node_b)]
                if v >= top_b:
                    top_b = v
                    start_b = s_b
                    cell_b = node_b
                s_b -= 1
            else:
                alive_b = False
        while alive and s >= 0:  # the longer walk's rest, alone
            nxt = bc[np.uint64(2 * node)] + text[np.uint64(base + s)]
            if bc[np.uint64(2 * nxt + 1)] != node:
                break
            node = nxt
            v = best[s] + scores[np.uint64(node)]
            if v >= top:
                top = v
                start = s
                cell = node
            s -= 1
        while alive_b and s_b >= 0:
            nxt_b = bc[np.uint64(2 * node_b)] + text[np.uint64(base + s_b)]
            if bc[np.uint64(2 * nxt_b + 1)] != node_b:
                break
            node_b = nxt_b
            v = best[s_b] + scores[np.uint64(node_b)]
            if v >= top_b:
                top_b = v
                start_b = s_b
                cell_b = node_b
            s_b -= 1
        best[e] = top
        back[e] = start
        tok[e] = cell
        v = top + scores[np.uint64(single_b)]
        if v > top_b:
            top_b = v
            start_b = e
            cell_b = single_b
        best[e + 1] = top_b
        back[e + 1] = start_b
        tok[e + 1] = cell_b
        e += 2
    return state, u_next


@njit(cache=True, nogil=True, error_model="numpy")
def forward_linear(bc, pair, weights, max_len, alpha, text, base, e0, e1, acc, back, tok, sums, cells, state, u_next):
    """The sampler in the linear domain. ``weights[cell]``: p ** alpha of the piece ending at the cell, 0 where none ends.

    The walk records, for its j-th candidate (j = 0: the single byte, 1: two bytes, ...), the
    running total of path weights ``sums[j]`` and the cell ``cells[j]``; candidate j is then
    chosen with probability ``(sums[j] - sums[j-1]) / total`` as the first j whose running total
    exceeds ``u * total``, found by counting the totals at or below it (a count has no branch
    to mispredict; the totals only grow, so it is that first index). One uniform per position
    with a second candidate: the reservoir this replaces drew one per replacement and lost a
    third of the speed to the generator and to unpredictable replacement branches. Whether a
    uniform is drawn depends only on the text, never on earlier draws, so every draw stays
    independent. ``sums`` and ``cells`` hold at least ``max_len`` entries."""
    if e0 == 1:
        acc[0] = 1.0
    base0 = bc[0]
    for e in range(1, e1 + 1):  # a constant start: see the module docstring
        if e < e0:
            continue
        c = np.int64(text[np.uint64(base + e - 1)])
        node = base0 + c
        total = acc[e - 1] * weights[np.uint64(node)]
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[np.uint64(base + e - 2)])]
            if node >= 0:
                sums[0] = total
                cells[0] = cell
                total += acc[e - 2] * weights[np.uint64(node)]
                sums[1] = total
                cells[1] = node
                k = 2
                for s in range(e - 3, -1, -1):  # the walk written as forward_viterbi's: 1.03-1.05x
                    nxt = bc[np.uint64(2 * node)] + text[np.uint64(base + s)]
                    if bc[np.uint64(2 * nxt + 1)] != node:
                        break
                    node = nxt
                    total += acc[s] * weights[np.uint64(node)]
                    sums[k] = total
                    cells[k] = node
                    k += 1
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
    return state, u_next


@njit(cache=True, nogil=True, error_model="numpy")
def forward_log(bc, pair, scores, max_len, alpha, text, base, e0, e1, acc, back, tok, sums, cells, state, u_next):
    """The sampler for alphas so large that ``p ** alpha`` underflows (or ``alpha * log p``
    overflows). ``scores[cell]`` is log p (-inf where no piece ends), as for Viterbi. Returns
    the generator state and the uniform drawn ahead for the next replacement (``u_next``).

    ``acc[e]`` is ``log(Z[e]) / alpha``: the log-sum-exp of path weights divided by alpha, so it
    stays on the scale of a path's log probability (about the Viterbi score) for any finite
    alpha and any text length, where ``log Z`` itself would overflow for alpha near 1e308. At
    each end position the candidates are summed relative to the largest one seen so far
    (``top``): ``total = sum exp(alpha * (v - top))`` lies in [1, candidates], so nothing
    overflows, a candidate far below the best contributes exactly 0, and exact ties still share
    the probability (two equal candidates: 1/2 each). A reservoir keeps one candidate, with
    ``kept`` rescaled together with ``total`` when ``top`` moves."""
    if e0 == 1:
        acc[0] = 0.0
        u_next, state = next_uniform(state)
    base0 = bc[0]
    for e in range(1, e1 + 1):  # a constant start: see the module docstring
        if e < e0:
            continue
        c = np.int64(text[np.uint64(base + e - 1)])
        node = base0 + c
        top = acc[e - 1] + scores[np.uint64(node)]
        total = 1.0
        kept = 1.0
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | np.int64(text[np.uint64(base + e - 2)])]
            s = e - 2
            u = 0.0
            if node >= 0:
                u = u_next
                u_next, state = next_uniform(state)
            while node >= 0:
                score = scores[np.uint64(node)]
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
                nxt = bc[np.uint64(2 * node)] + text[np.uint64(base + s)]
                if bc[np.uint64(2 * nxt + 1)] != node:
                    break
                node = nxt
        back[e] = start
        tok[e] = cell
        acc[e] = top + np.log(total) / alpha
    return state, u_next


#: what the encode kernel takes for each mode (``kernels.modes``): an empty array whose dtype
#: names the forward function, so that each mode is a compile-time specialization of the kernel
#: and a command that only samples compiles no Viterbi (and the reverse)
MODE_TAGS = (np.empty(0, np.int8), np.empty(0, np.int16), np.empty(0, np.int32))
_FORWARDS = {np.dtype(np.int8): forward_viterbi, np.dtype(np.int16): forward_linear, np.dtype(np.int32): forward_log}


def forward_for(tag):
    """The forward function of the mode ``tag`` stands for (see :data:`MODE_TAGS`): a kernel
    calls ``forward_for(mode_tag)(...)``. This body runs without numba (``NUMBA_DISABLE_JIT=1``),
    the overload below inside kernels."""
    return _FORWARDS[tag.dtype]


@overload(forward_for, inline="always")
def _forward_by_tag(tag):
    """Inlined into the kernel, which then calls the chosen function itself (see the module
    docstring)."""
    chosen = {types.int8: forward_viterbi, types.int16: forward_linear, types.int32: forward_log}[tag.dtype]

    def impl(tag):
        return chosen

    return impl
