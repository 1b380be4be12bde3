"""Viterbi in plain Python for the first few kilobytes a process encodes.

The numba kernels are fast once running, but the first kernel call of a process costs far more
than encoding a line: importing numba (0.2-0.4 s) and loading a cached kernel (another 0.15-0.3
s, numba sets up its whole typing context on the first dispatch). ``echo text | bytepiece
encode`` would spend nearly all its time there. So a process starts on this function, which
walks the same arrays with the same arithmetic as ``kernels.encode._viterbi_span`` (same
float64 sums, same ``>=`` tie rule, same chunks) and therefore returns the same ids, at a few
microseconds per byte. ``Tokenizer`` hands over to the kernels for good once the bytes encoded
here would cost about as much as loading them (the rent-or-buy rule: never more than twice the
better choice in hindsight). Sampling always uses the kernels; ``Segmenter`` makes the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    n = len(data)
    a = 0
    while a < n:
        b = data.find(b"\n", a)
        if b < 0:
            b = n
        while b < n and data[b] == NEWLINE:
            b += 1
        out.extend(_chunk(bc, pair, piece, scores, data, a, b))
        a = b
    return out


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
    ids = []
    j = m
    while j > 0:
        ids.append(piece[tok[j]])
        j = back[j]
    ids.reverse()
    return ids
