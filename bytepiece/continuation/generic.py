"""The any-LM backend: every tokenization of the bytes, for a model seen only through
``next_token_logprobs`` (:class:`bytepiece.continuation.TokenLM`), in Python.

Same quantities as the Kneser-Ney kernels (:mod:`bytepiece.kernels.bytedp`), but an LM is a black
box here: a state is a token history, and histories merge only when the LM declares a finite
``context_size`` (they then predict the same once their last ``context_size`` tokens agree,
:func:`.context.last_tokens`). One full next-token distribution per distinct history is computed
(in one batch per byte position when the LM has ``next_token_logprobs_batch``) and cached for the
cursor's lifetime (:class:`Distributions`). Masses are kept as natural logs, so nothing underflows.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels.byterange import SortedVocab
from .context import context_size, last_tokens
from .cursor import Cursor
from .vocab import VocabIndex

__all__ = ["Distributions", "GenericCursor"]

State = tuple[float, tuple[int, ...], float]  # log mass, history, log factor on transitions out
CACHE_BYTES = 1 << 28


class Distributions:
    """Next-token probabilities of a black-box LM, one full vector per distinct history, cached
    under the tokens the LM declares it looks at (the most recently used ones, up to
    :data:`CACHE_BYTES` of vectors)."""

    def __init__(self, lm: Any, vocab: SortedVocab) -> None:
        self._lm = lm
        self._vocab_size = len(vocab.id_rank)
        # the first byte of each id's piece, 256 for ids without bytes: summed by id, no gather of p
        self._first_byte_of_id = np.full(self._vocab_size, 256, dtype=np.intp)
        self._first_byte_of_id[vocab.rank_id] = vocab.sb[vocab.so[:-1]]
        self.keep = context_size(lm)
        self._cache: OrderedDict[tuple[int, ...], npt.NDArray[np.float64]] = OrderedDict()
        self._firsts: dict[tuple[int, ...], npt.NDArray[np.float64]] = {}
        self._room = max(64, CACHE_BYTES // (8 * max(self._vocab_size, 1)))

    def key(self, history: tuple[int, ...]) -> tuple[int, ...]:
        """Histories with the same key predict the same."""
        return last_tokens(history, self.keep)

    def __call__(self, histories: list[tuple[int, ...]]) -> list[npt.NDArray[np.float64]]:
        """The next-token probabilities after each history (batched for the ones not cached)."""
        keys = [self.key(h) for h in histories]
        missing = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if missing:
            full = dict(zip(keys, histories))
            contexts = [list(full[k]) for k in missing]
            probs = getattr(self._lm, "next_token_probs_batch", None)
            batch = getattr(self._lm, "next_token_logprobs_batch", None)
            if callable(probs):  # probabilities computed where it is cheaper (a transformer's exp in torch)
                rows, logs = np.asarray(probs(contexts), dtype=np.float64), False
            elif callable(batch) and len(missing) > 1:
                rows, logs = np.asarray(batch(contexts), dtype=np.float64), True
            else:
                rows = np.stack([np.asarray(self._lm.next_token_logprobs(c), dtype=np.float64) for c in contexts])
                logs = True
            if rows.shape != (len(missing), self._vocab_size):
                name = "next_token_logprobs" if logs else "next_token_probs_batch"
                raise InputError(f"{name} returned rows of shape {rows.shape[1:]}, expected ({self._vocab_size},)")
            for k, row in zip(missing, rows):  # one array each: a view would keep its whole batch alive
                self._cache[k] = np.exp(row) if logs else row.copy()
        out = []
        for k in keys:
            self._cache.move_to_end(k)
            out.append(self._cache[k])
        while len(self._cache) > max(self._room, len(histories)):
            self._firsts.pop(self._cache.popitem(last=False)[0], None)
        return out

    def first_bytes(self, history: tuple[int, ...], p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``p`` (the distribution after ``history``) summed by the first byte of each token."""
        key = self.key(history)
        got = self._firsts.get(key)
        if got is None:
            got = np.asarray(np.bincount(self._first_byte_of_id, weights=p, minlength=257)[:256], dtype=np.float64)
            self._firsts[key] = got
        return got


class GenericCursor(Cursor):
    """Every tokenization of the bytes after a token context, under any LM."""

    def __init__(self, index: VocabIndex, vocab: SortedVocab, dists: Distributions, max_states: int,
                 context: list[int], data: bytes, constrained: int, log_bias: float) -> None:
        super().__init__(data, constrained)
        self._index = index
        self._V = vocab
        self._dists = dists
        self._max_states = max_states
        self._context = tuple(context)
        self._log_bias = log_bias
        self.exact = True
        self._rebuild()

    # -- the recursion -----------------------------------------------------------------------------
    def _rebuild(self) -> None:
        key = self._dists.key
        self._pos: list[dict[tuple[int, ...], State]] = [{key(self._context): (0.0, self._context, 0.0)}]
        data = bytes(self._data)
        if self._nl > 0:
            self._set_factors(0)
        for t in range(1, len(data) + 1):
            self._pull(t)
            if t < self._nl:
                self._set_factors(t)

    def _pull(self, t: int) -> None:
        data = bytes(self._data)
        acc: dict[tuple[int, ...], State] = {}
        for j in range(max(0, t - self._V.max_len), t):
            tid = self._index.id_of(data[j:t])
            if tid < 0 or not self._pos[j]:
                continue
            states = list(self._pos[j].values())
            for (lm, hist, lf), p in zip(states, self._dists([s[1] for s in states])):
                if p[tid] <= 0:
                    continue
                value = lm + lf + math.log(p[tid])
                new = last_tokens(hist + (tid,), self._dists.keep)  # all the LM reads: bounded memory
                key = self._dists.key(new)
                if key in acc:
                    old = acc[key]
                    acc[key] = (float(np.logaddexp(old[0], value)), old[1], 0.0)
                else:
                    acc[key] = (value, new, 0.0)
        if len(acc) > self._max_states:
            self.exact = False
            acc = dict(sorted(acc.items(), key=lambda kv: -kv[1][0])[: self._max_states])
        del self._pos[t:]
        self._pos.append(acc)

    def _set_factors(self, j: int) -> None:
        data = bytes(self._data)
        nl = self._nl
        L = self._V.max_len
        prefixes = [tid for d in range(1, min(L, nl - j - 1) + 1) if (tid := self._index.id_of(data[j : j + d])) >= 0]
        lo, hi = self._index.extension_range(data[j:nl]) if nl - j <= L else (0, 0)
        ranks = self._V.rank_id[lo:hi]
        states = self._pos[j]
        for (key, (lm, hist, _)), p in zip(list(states.items()), self._dists([s[1] for s in states.values()])):
            allowed = float(p[prefixes].sum() + p[ranks].sum())
            if self._log_bias == math.inf:
                lf = -math.log(allowed) if allowed > 0 else -math.inf
            else:
                bias = math.exp(self._log_bias)
                lf = self._log_bias - math.log(1.0 + (bias - 1.0) * allowed)
            states[key] = (lm, hist, lf)

    def _buckets(self) -> tuple[npt.NDArray[np.float64], float]:
        data = bytes(self._data)
        m = len(data)
        V = self._V
        terms = []
        for j in range(max(0, m - V.max_len + 1), m + 1):
            d = m - j
            lo, hi = self._index.extension_range(data[j:m]) if d else (0, len(V.rank_id))
            if lo < hi and V.so[lo + 1] - V.so[lo] == d:
                lo += 1
            if lo >= hi:
                continue
            states = list(self._pos[j].values())
            for (lm, hist, lf), p in zip(states, self._dists([s[1] for s in states])):
                terms.append((lm + lf, hist, p, lo, hi, d))
        out = np.zeros(256, dtype=np.float64)
        if not terms:
            return out, -math.inf
        base = max(t[0] for t in terms)
        for lw, hist, p, lo, hi, d in terms:
            if d == 0:
                out += math.exp(lw - base) * self._dists.first_bytes(hist, p)
                continue
            nxt = V.sb[V.so[lo:hi] + d]
            out += math.exp(lw - base) * np.bincount(nxt, weights=p[V.rank_id[lo:hi]], minlength=256)
        total = float(out.sum())
        if total <= 0:
            return out, -math.inf
        return out / total, base + math.log(total)

    # -- the cursor interface ----------------------------------------------------------------------
    def probs(self) -> npt.NDArray[np.float64]:
        return self._buckets()[0]

    def log_mass(self) -> float:
        return self._buckets()[1]

    def _append(self, byte: int) -> None:
        self._pull(len(self._data))

    def _back_to(self, n: int) -> None:
        del self._pos[n + 1:]
