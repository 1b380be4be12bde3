"""Viterbi in plain Python for the first few kilobytes a process encodes.

The numba kernels are fast once running, but the first kernel call of a process costs far more
than encoding a line: importing numba (0.2-0.4 s) and loading a cached kernel (another 0.15-0.3
s, numba sets up its whole typing context on the first dispatch). ``echo text | bytepiece
encode`` would spend nearly all its time there. So a process starts on this function, which
walks the same arrays with the same arithmetic as ``kernels.encode._viterbi_span`` (same
float64 sums, same ``>=`` tie rule, same chunks) and therefore returns the same ids, at a few
microseconds per byte. ``Tokenizer`` hands over to the kernels for good once the bytes encoded
here would cost about as much as loading them (the rent-or-buy rule: never more than twice the
better choice in hindsight); ``Segmenter`` and ``DocumentEncoder`` make the choice.

Sampling with weights ``p ** alpha`` (every alpha but those so large that the weights
underflow) runs here too, as ``kernels.forward.forward_linear`` does: the same splitmix64
draws (``kernels.splitmix``), the same products, sums, comparisons and rescaling in float64,
so the same seed gives the same ids on either side. A one-line ``--sample`` on a fresh install
then compiles nothing (it spent 6-9 s of CPU compiling the sampling kernels). The log-domain
sampler of huge alphas always uses the kernels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..kernels.splitmix import GOLDEN, MIX1, MIX2, RESCALE_HIGH, RESCALE_LOW, TO_UNIT

#: Bytes a process may encode here before it loads the kernels (about 0.1 s of Python).
PYTHON_BUDGET_BYTES = 1 << 16
NEWLINE = 10

#: ``bytepiece.kernels.encode`` once a process has loaded it (``None`` before): from then on
#: every input goes to the kernels. Process-wide, like numba's own state.
kernel_module: Any = None
#: what is left of ``PYTHON_BUDGET_BYTES`` in this process
python_budget = PYTHON_BUDGET_BYTES


def kernels() -> Any:
    """``bytepiece.kernels.encode``, imported (with numba) on first use."""
    global kernel_module
    if kernel_module is None:
        from ..kernels import encode

        kernel_module = encode
    return kernel_module


def python_encodes(n_bytes: int) -> bool:
    """Whether ``n_bytes`` more deterministic input would still go to :func:`viterbi_ids` (the
    kernels are not loaded yet and the budget covers it); nothing is taken off the budget."""
    return kernel_module is None and n_bytes <= python_budget


def python_covers(n_bytes: int) -> bool:
    """Whether these bytes go to :func:`viterbi_ids` (and come off the budget)."""
    global python_budget
    if kernel_module is not None or n_bytes > python_budget:
        return False
    python_budget -= n_bytes
    return True


def viterbi_ids(
    bc: Sequence[int], pair: Sequence[int], piece: Sequence[int], scores: Sequence[float], data: bytes
) -> list[int]:
    """Token ids of ``data``: the arrays as memoryviews (``Trie`` layout, per-cell scores)."""
    out: list[int] = []
    for a, b in _chunks(data):
        out.extend(_chunk(bc, pair, piece, scores, data, a, b))
    return out


def _chunks(data: bytes) -> Iterator[tuple[int, int]]:
    """The encoding chunks of ``data`` (``kernels.chunking.chunk_end``): each ends after a run
    of newlines."""
    n = len(data)
    a = 0
    while a < n:
        b = data.find(b"\n", a)
        if b < 0:
            b = n
        while b < n and data[b] == NEWLINE:
            b += 1
        yield a, b
        a = b


def _chunk(bc, pair, piece, scores, data: bytes, a: int, b: int) -> list[int]:
    m = b - a
    best = [0.0] * (m + 1)
    back = [0] * (m + 1)
    tok = [0] * (m + 1)
    base0 = bc[0]
    for e in range(1, m + 1):
        c = data[a + e - 1]
        node = base0 + c
        top = best[e - 1] + scores[node]
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | data[a + e - 2]]
            if node >= 0:
                v = best[e - 2] + scores[node]
                if v >= top:
                    top, start, cell = v, e - 2, node
                for s in range(e - 3, -1, -1):
                    nxt = bc[2 * node] + data[a + s]
                    if bc[2 * nxt + 1] != node:
                        break
                    node = nxt
                    v = best[s] + scores[node]
                    if v >= top:
                        top, start, cell = v, s, node
        best[e] = top
        back[e] = start
        tok[e] = cell
    return _path(piece, back, tok, m)


def _path(piece: Sequence[int], back: list[int], tok: list[int], m: int) -> list[int]:
    """The piece ids of the path that ``back`` links from ``m`` to 0, in order."""
    ids = []
    j = m
    while j > 0:
        ids.append(piece[tok[j]])
        j = back[j]
    ids.reverse()
    return ids


# -- sampling -------------------------------------------------------------------------------------
_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * MIX1) & _MASK
    z = ((z ^ (z >> 27)) * MIX2) & _MASK
    return z ^ (z >> 31)


def seed_state(seed: int, stream: int) -> int:
    """``kernels.rng.seed_state``: the generator of document ``stream`` under ``seed``."""
    return _mix((seed + GOLDEN * (stream + 1)) & _MASK)


def sample_ids(bc: Sequence[int], pair: Sequence[int], piece: Sequence[int], weights: Sequence[float], max_len: int,
               data: bytes, state: int) -> tuple[list[int], int]:
    """Ids of ``data`` sampled with the per-cell ``weights`` (``p ** alpha``, 0 where no piece
    ends) from the generator ``state``, and the state after: ``kernels.forward.forward_linear``
    over each chunk, step for step."""
    out: list[int] = []
    for a, b in _chunks(data):
        ids, state = _sample_chunk(bc, pair, piece, weights, max_len, data, a, b, state)
        out.extend(ids)
    return out, state


def _sample_chunk(bc, pair, piece, weights, max_len: int, data: bytes, a: int, b: int,
                  state: int) -> tuple[list[int], int]:
    m = b - a
    acc = [1.0] * (m + 1)
    back = [0] * (m + 1)
    tok = [0] * (m + 1)
    base0 = bc[0]
    for e in range(1, m + 1):
        c = data[a + e - 1]
        node = base0 + c
        total = acc[e - 1] * weights[node]
        start = e - 1
        cell = node
        if e >= 2:
            node = pair[(c << 8) | data[a + e - 2]]
            if node >= 0:
                sums = [total]
                cells = [cell]
                total += acc[e - 2] * weights[node]
                sums.append(total)
                cells.append(node)
                for s in range(e - 3, -1, -1):
                    nxt = bc[2 * node] + data[a + s]
                    if bc[2 * nxt + 1] != node:
                        break
                    node = nxt
                    total += acc[s] * weights[node]
                    sums.append(total)
                    cells.append(node)
                state = (state + GOLDEN) & _MASK
                target = (_mix(state) >> 11) * TO_UNIT * total
                j = 0
                for i in range(len(sums) - 1):  # the last never: a product rounded up to total picks it
                    if sums[i] <= target:
                        j += 1
                start = e - 1 - j
                cell = cells[j]
        back[e] = start
        tok[e] = cell
        if total > RESCALE_HIGH or total < RESCALE_LOW:
            inv = 1.0 / total
            for i in range(max(0, e - max_len), e):
                acc[i] *= inv
            total = 1.0
        acc[e] = total
    return _path(piece, back, tok, m), state
