"""What every byte-level cursor shares: appending and going back, and the queries built on
``probs()`` (scoring a continuation, greedy and sampled bytes, the most probable characters).

A cursor stands after some bytes ``data`` (and a token context fixed when it was made); a
backend supplies the next-byte distribution there (:meth:`Cursor.probs`), the probability of the
bytes so far (:meth:`Cursor.log_mass`), one more byte (:meth:`Cursor._append`) and going back
(:meth:`Cursor._back_to`). The backends: :mod:`.kn` (Kneser-Ney kernels, every tokenization),
:mod:`.generic` (any LM, every tokenization) and :mod:`.canonical` (the tokenizer's own
tokenizations only, either LM).
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from typing import Union

import numpy as np
import numpy.typing as npt

from ..errors import InputError

__all__ = ["Cursor", "Seed", "char_length"]

Seed = Union[int, np.random.Generator, None]


def char_length(lead: int) -> int:
    """Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and stray continuation bytes)."""
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    if lead >= 0xC0:
        return 2
    return 1


def check_temperature(temperature: float) -> None:
    if not (temperature > 0 and math.isfinite(temperature)):
        raise InputError(f"temperature must be a positive number, got {temperature!r}")


def tempered(p: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
    """``p`` with its log-probabilities divided by ``temperature``, renormalised."""
    if temperature == 1.0:
        return p
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    q = np.exp(logits - logits.max())
    return q / q.sum()


class Cursor(ABC):
    """Position after some bytes; query the next byte, append, go back.

    ``exact`` is False when a backend had to drop states (a capped generic recursion): the
    probabilities are then approximate. The first ``constrained`` bytes are a required prefix
    (token healing) that :meth:`truncate` never goes into.
    """

    exact = True

    def __init__(self, data: bytes, constrained: int) -> None:
        self._data = bytearray(data)
        self._nl = constrained

    # -- what a backend provides --------------------------------------------------------------
    @abstractmethod
    def probs(self) -> npt.NDArray[np.float64]:
        """P(next byte | bytes so far), 256 values summing to 1."""

    @abstractmethod
    def log_mass(self) -> float:
        """Natural log of the probability of the bytes so far, relative to the context (0 for
        none; about 0 for a hard-constrained prefix)."""

    @abstractmethod
    def _append(self, byte: int) -> None:
        """Move past one more byte (``self._data`` already holds it)."""

    @abstractmethod
    def _back_to(self, n: int) -> None:
        """Forget every byte after the first ``n`` (``self._data`` is cut afterwards)."""

    # -- shared -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        """The bytes after the context (the constrained prefix included)."""
        return bytes(self._data)

    def push(self, byte: int) -> None:
        self.extend(bytes([byte]))

    def extend(self, data: bytes) -> None:
        for b in bytes(data):
            self._data.append(b)
            self._append(b)

    def truncate(self, n: int) -> None:
        """Go back to the first ``n`` bytes (not into a constrained prefix)."""
        if not self._nl <= n <= len(self._data):
            raise InputError(f"can truncate to {self._nl}..{len(self._data)} bytes, not {n}")
        self._back_to(n)
        del self._data[n:]

    def score(self, data: bytes) -> float:
        """Natural-log probability of ``data`` after the bytes so far; the cursor moves past it."""
        total = 0.0
        for b in bytes(data):
            p = self.probs()
            total += math.log(p[b]) if p[b] > 0 else -math.inf
            self.push(b)
        return total

    def greedy(self, n: int) -> bytes:
        """Append the most probable byte ``n`` times (ties: the lowest byte); returns them."""
        out = bytearray()
        for _ in range(n):
            b = int(np.argmax(self.probs()))
            self.push(b)
            out.append(b)
        return bytes(out)

    def sample(self, n: int, *, temperature: float = 1.0, seed: Seed = None) -> bytes:
        """Append ``n`` bytes drawn from the byte distributions (``temperature`` rescales each
        one's log-probabilities); returns them."""
        check_temperature(temperature)
        rng = np.random.default_rng(seed)
        out = bytearray()
        for _ in range(n):
            b = int(rng.choice(256, p=tempered(self.probs(), temperature)))
            self.push(b)
            out.append(b)
        return bytes(out)

    def next_chars(self, top: int = 10) -> list[tuple[bytes, float]]:
        """The ``top`` most probable next characters (UTF-8 sequences, as bytes) with their
        probabilities, most probable first: best-first search over byte prefixes, exact because
        a prefix is never less probable than a character it starts. The cursor ends where it
        started."""
        if not isinstance(top, int) or top < 1:
            raise InputError(f"top must be a positive integer, got {top!r}")
        n0 = len(self)
        heap: list[tuple[float, bytes]] = [(-1.0, b"")]
        found: list[tuple[bytes, float]] = []
        while heap and len(found) < top:
            neg, pre = heapq.heappop(heap)
            if pre and len(pre) == char_length(pre[0]):
                found.append((pre, -neg))
                continue
            self.truncate(n0)
            self.extend(pre)
            p = self.probs()
            for b in np.flatnonzero(p > 0).tolist():
                heapq.heappush(heap, (neg * float(p[b]), pre + bytes([b])))
        self.truncate(n0)
        return found
