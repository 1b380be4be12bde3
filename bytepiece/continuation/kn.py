"""The Kneser-Ney backend: every tokenization of the bytes, summed by compiled kernels
(:mod:`bytepiece.kernels.bytedp`).

The state of a history is the deepest context the model has counts for: histories with the same
one predict the same, so they merge, and a byte position holds tens of states (rarely hundreds)
instead of one per tiling. The kernels keep the positions in a ring of slots, enough to go back
:data:`BACKTRACK_BYTES` bytes without replaying the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels import bytedp as D
from ..kernels.byterange import KNView, SortedVocab, big_tables
from .context import last_tokens
from .cursor import Cursor

__all__ = ["BACKTRACK_BYTES", "KNCursor", "kn_view"]

BACKTRACK_BYTES = 64  # how far a cursor can go back (truncate) without replaying its bytes
BIG_CONTEXT = 64  # contexts with this many counted continuations get pre-summed tables
FIRST_STATES = 64


def kn_view(lm: Any, vocab: SortedVocab, *, keep: npt.NDArray[np.bool_] | None = None) -> KNView:
    """The Kneser-Ney tables of ``lm`` plus the sums that make range queries cheap in this
    vocabulary's order. ``keep`` (a mask over ranks) zeroes the other pieces in every range sum
    (their unigram mass and their counted terms) without changing any context's normaliser, so
    the sums are those of ``p(t | h) * keep[t]``; the probability of a kept token is unchanged."""
    p1, words, child_start, counts, denom, gamma, disc = lm.tables()
    p1r = p1[vocab.rank_id]
    if keep is None:
        keep = np.ones(len(p1r), dtype=np.bool_)
    big = big_tables(child_start, words, counts, disc, vocab.id_rank, vocab.sb, vocab.so, len(child_start) - 1,
                     BIG_CONTEXT, keep)
    if not keep.all():
        p1r = np.where(keep, p1r, 0.0)
        dropped = np.zeros(len(p1), dtype=np.bool_)
        dropped[vocab.rank_id[~keep]] = True
        counts = np.where(dropped[np.maximum(words, 0)] & (np.arange(len(words)) > 0), 0, counts).astype(counts.dtype)
        p1 = np.where(dropped, 0.0, p1)
    p1c = np.zeros(len(p1r) + 1, dtype=np.float64)
    np.cumsum(p1r, out=p1c[1:])
    p1_first = np.bincount(vocab.sb[vocab.so[:-1]], weights=p1r, minlength=256).astype(np.float64)
    return KNView(int(lm.order), p1, words, child_start, counts, denom, gamma, disc, p1c, p1_first, *big)


class KNCursor(Cursor):
    """Every tokenization of the bytes after a token context, under a Kneser-Ney LM."""

    def __init__(self, vocab: SortedVocab, view: KNView, max_states: int, context: list[int], data: bytes,
                 constrained: int, log_bias: float) -> None:
        super().__init__(data, constrained)
        self._V = vocab
        self._T = view
        self._max_states = max_states
        self._context = np.array(last_tokens(context, view.order - 1), dtype=np.int32)
        self._log_bias = log_bias
        self._k = min(FIRST_STATES, max_states)
        self._ring = constrained + vocab.max_len + 2 + BACKTRACK_BYTES
        self._out = np.empty(256, dtype=np.float64)
        self._rebuild(bytes(data))

    def _rebuild(self, data: bytes) -> None:
        arr = np.frombuffer(data, dtype=np.uint8)
        while True:
            S = D.make_state(self._ring, self._V.max_len, self._k, self._T.order)
            D.start(self._T, S, self._context)
            if D.build(self._V, self._T, S, arr, self._nl, self._log_bias) == D.OK:
                break
            self._grow()
        self._S = S
        self._high = len(data)

    def _grow(self) -> None:
        if self._k >= self._max_states:
            raise InputError(f"more than max_states={self._max_states} LM states at one byte position; "
                             "pass a larger max_states to ByteLevelLM")
        self._k = min(self._k * 4, self._max_states)

    def _retry(self, run) -> Any:
        """Run a kernel that may fill a position; on FULL grow, replay the bytes, run again."""
        while True:
            status, value = run()
            if status == D.OK:
                return value
            self._grow()
            self._rebuild(bytes(self._data))

    def probs(self) -> npt.NDArray[np.float64]:
        D.probs(self._V, self._T, self._S, self._out)
        return self._out.copy()

    def log_mass(self) -> float:
        return float(D.probs(self._V, self._T, self._S, self._out))

    def _append(self, byte: int) -> None:
        while D.push(self._V, self._T, self._S, np.uint8(byte)) != D.OK:
            self._grow()
            self._rebuild(bytes(self._data[:-1]))
        self._high = max(self._high, len(self._data))

    def _back_to(self, n: int) -> None:
        if n > self._high - self._ring + self._V.max_len:
            self._S.meta[0] = n
        else:
            self._rebuild(bytes(self._data[:n]))

    def score(self, data: bytes) -> float:
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
        total = self._retry(lambda: D.score(self._V, self._T, self._S, arr, self._out))
        self._data.extend(arr.tobytes())
        self._high = max(self._high, len(self._data))
        return float(total)

    def greedy(self, n: int) -> bytes:
        result = np.zeros(max(n, 0), dtype=np.uint8)
        self._retry(lambda: (D.greedy(self._V, self._T, self._S, len(result), result, self._out), None))
        self._data.extend(result.tobytes())
        self._high = max(self._high, len(self._data))
        return result.tobytes()
