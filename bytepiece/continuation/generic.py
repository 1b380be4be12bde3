"""The byte-level recursion of :mod:`bytepiece.continuation` for any token LM, in Python.

Same quantities as the Kneser-Ney kernels (:mod:`bytepiece.kernels.bytedp`), but an LM is a black
box here: a state is a token history, and histories merge only when the LM declares a finite
``context_size`` (they then predict the same once their last ``context_size`` tokens agree).
One full next-token distribution per distinct history is computed (in one batch per byte
position when the LM has ``next_token_logprobs_batch``) and cached for the cursor's lifetime.
Masses are kept as natural logs, so nothing underflows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..errors import InputError

if TYPE_CHECKING:
    from .byte_lm import ByteLevelLM, Seed

State = tuple[float, tuple[int, ...], float]  # log mass, history, log factor on transitions out


class GenericCursor:
    """:class:`bytepiece.continuation.ByteCursor`'s interface over ``next_token_logprobs``."""

    def __init__(self, owner: ByteLevelLM, context: list[int], data: bytes, constrained: int, log_bias: float) -> None:
        self._lm = owner.lm
        self._index = owner.index
        self._V = owner.vocab
        self._max_states = owner.max_states
        size = getattr(self._lm, "context_size", None)
        self._keep = int(size) if isinstance(size, (int, np.integer)) and size >= 0 else None
        self._context = tuple(context)
        self._nl = constrained
        self._log_bias = log_bias
        self._cache: dict[tuple[int, ...], npt.NDArray[np.float64]] = {}
        self.exact = True
        self._rebuild(bytes(data))

    # -- LM access ---------------------------------------------------------------------------------
    def _key(self, history: tuple[int, ...]) -> tuple[int, ...]:
        if self._keep is None:
            return history
        return history[len(history) - self._keep:] if self._keep else ()

    def _dists(self, histories: list[tuple[int, ...]]) -> list[npt.NDArray[np.float64]]:
        missing = [h for h in dict.fromkeys(self._key(h) for h in histories) if h not in self._cache]
        full = {self._key(h): h for h in histories}
        if missing:
            batch = getattr(self._lm, "next_token_logprobs_batch", None)
            if callable(batch) and len(missing) > 1:
                rows = np.asarray(batch([list(full[k]) for k in missing]), dtype=np.float64)
            else:
                rows = np.stack([np.asarray(self._lm.next_token_logprobs(list(full[k])), dtype=np.float64)
                                 for k in missing])
            if rows.shape != (len(missing), self._index.vocab_size):
                raise InputError(f"next_token_logprobs returned shape {rows.shape[1:]}, expected "
                                 f"({self._index.vocab_size},)")
            for k, row in zip(missing, rows):
                self._cache[k] = np.exp(row)
        return [self._cache[self._key(h)] for h in histories]

    # -- the recursion -----------------------------------------------------------------------------
    def _rebuild(self, data: bytes) -> None:
        self._data = bytearray(data)
        self._pos: list[dict[tuple[int, ...], State]] = [{self._key(self._context): (0.0, self._context, 0.0)}]
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
                new = hist + (tid,)
                key = self._key(new)
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
                terms.append((lm + lf, p, lo, hi, d))
        out = np.zeros(256, dtype=np.float64)
        if not terms:
            return out, -math.inf
        base = max(t[0] for t in terms)
        for lw, p, lo, hi, d in terms:
            nxt = V.sb[V.so[lo:hi] + d]
            out += math.exp(lw - base) * np.bincount(nxt, weights=p[V.rank_id[lo:hi]], minlength=256)
        total = float(out.sum())
        if total <= 0:
            return out, -math.inf
        return out / total, base + math.log(total)

    # -- the cursor interface ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    def probs(self) -> npt.NDArray[np.float64]:
        return self._buckets()[0]

    def log_mass(self) -> float:
        return self._buckets()[1]

    def push(self, byte: int) -> None:
        self.extend(bytes([byte]))

    def extend(self, data: bytes) -> None:
        for b in bytes(data):
            self._data.append(b)
            self._pull(len(self._data))

    def score(self, data: bytes) -> float:
        total = 0.0
        for b in bytes(data):
            p = self.probs()
            total += math.log(p[b]) if p[b] > 0 else -math.inf
            self.push(b)
        return total

    def greedy(self, n: int) -> bytes:
        out = bytearray()
        for _ in range(n):
            b = int(np.argmax(self.probs()))
            self.push(b)
            out.append(b)
        return bytes(out)

    def sample(self, n: int, *, temperature: float = 1.0, seed: Seed = None) -> bytes:
        if not (temperature > 0 and math.isfinite(temperature)):
            raise InputError(f"temperature must be a positive number, got {temperature!r}")
        rng = np.random.default_rng(seed)
        out = bytearray()
        for _ in range(n):
            p = self.probs()
            if temperature != 1.0:
                with np.errstate(divide="ignore"):
                    logits = np.log(p) / temperature
                p = np.exp(logits - logits.max())
                p /= p.sum()
            b = int(rng.choice(256, p=p))
            self.push(b)
            out.append(b)
        return bytes(out)

    def truncate(self, n: int) -> None:
        if not self._nl <= n <= len(self._data):
            raise InputError(f"can truncate to {self._nl}..{len(self._data)} bytes, not {n}")
        del self._data[n:]
        del self._pos[n + 1:]

