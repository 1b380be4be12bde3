"""Exact byte-level continuation: what a *token* LM says about the next bytes of a text.

A prompt cut inside a token is tokenized differently from the same bytes inside a longer text,
so asking the LM "what token comes after the prompt's tokens?" answers the wrong question. The
question that does not depend on where the cut falls is about bytes: given that the text starts
with the prompt's bytes, how likely is each next byte? The LM defines it once we sum over every
token sequence whose bytes start with those of the prompt, canonical or not.

What is computed (:class:`ByteLevelLM`)
---------------------------------------
The prompt is split into a *stable prefix* (:func:`stable_split`: its tokenization is the same
for every possible continuation, so conditioning on those tokens loses nothing) and a *tail* of
bytes. For the tail ``r`` and each byte ``b``::

    M(r b) = sum over token sequences t1..tk after the stable prefix whose bytes start with
             r b while t1..t(k-1) end inside r b, of  prod_i P(t_i | stable prefix, t_<i)
    P(b | prompt) = M(r b) / sum_b' M(r b')

Every infinite token sequence whose bytes start with ``r`` belongs to exactly one of these
terms, so the 256 values sum to ``M(r)``, the probability that the text goes on with ``r``.
Chaining gives characters, greedy or sampled byte continuations and the log-loss of any text.

How (:mod:`bytepiece.kernels.bytedp`)
-------------------------------------
A forward pass over byte positions of the tail: ``F[j, h]`` is the summed probability of the
token sequences that tile the first ``j`` tail bytes and leave the LM in state ``h``;
``F[j + len(t), h·t] += F[j, h] P(t | h)`` for every piece ``t`` that matches the bytes at
``j``. The next-byte masses add, for each live ``(j, h)``, the probability of the tokens that
start with ``r[j:]`` and go on, split by their next byte. For the Kneser-Ney LM, ``h`` is the
deepest context the model has counts for: different histories with the same deepest context
predict the same, so they merge, and the state count at a position stays small (tens, rarely
hundreds) instead of growing with the number of tilings (2^(m-1) for m bytes).

Cost for a tail of m bytes, longest piece L, S states per position and an order-n LM: O(m L S)
token probabilities (each n binary searches) to move the mass, and per next-byte query
O(L S (c + 256)) where c is the number of counted continuations of the states' contexts
(vocabulary ranges are binary searches in the pieces sorted by their bytes; unigram mass comes
from a cumulative sum in that order). The tail is short because the stable prefix ends at most
a few tokens before the cut. Any other LM (``next_token_logprobs``) goes through the same
recursion in Python with one full distribution per distinct context (:mod:`.continuation_generic`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Union, cast

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .healing import VocabIndex
from ..kernels import bytedp as D
from ..kernels.byterange import big_tables
from .split import StableSplit, stable_points, stable_split

if TYPE_CHECKING:
    from .generic import GenericCursor

__all__ = ["ByteCursor", "ByteLevelLM", "StableSplit", "TokenLM", "stable_points", "stable_split"]

BACKTRACK_BYTES = 64  # how far a cursor can go back (truncate) without replaying its bytes
DEFAULT_MAX_STATES = 1 << 16
BIG_CONTEXT = 64  # contexts with this many counted continuations get pre-summed tables (kn_view)
_FIRST_STATES = 64

Seed = Union[int, np.random.Generator, None]


class TokenLM(Protocol):
    """What :class:`ByteLevelLM` needs from a language model over the tokenizer's ids.

    Optional: ``next_token_logprobs_batch(contexts) -> (n, vocab_size)`` (used when present) and
    ``context_size`` (histories that agree on their last ``context_size`` tokens predict the
    same; lets the generic recursion merge them)."""

    vocab_size: int

    def next_token_logprobs(self, context_ids: Sequence[int]) -> npt.NDArray[np.floating]: ...


# -- the byte-level model ---------------------------------------------------------------------------
def sorted_vocab(index: VocabIndex) -> D.SortedVocab:
    """The pieces in byte order as flat arrays: "tokens starting with these bytes" becomes a rank range."""
    pieces = index.sorted_pieces()
    if len(set(pieces)) != len(pieces):
        raise InputError("the vocabulary has two ids with the same bytes; the byte-level model needs unique pieces")
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    so = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=so[1:])
    sb = np.frombuffer(b"".join(pieces), dtype=np.uint8).copy()
    rank_id = np.ascontiguousarray(index.sorted_ids, dtype=np.int32)
    id_rank = np.full(index.vocab_size, -1, dtype=np.int32)
    id_rank[rank_id] = np.arange(len(pieces), dtype=np.int32)
    first_lo = np.searchsorted(sb[so[:-1]], np.arange(257), side="left").astype(np.int64)
    return D.SortedVocab(sb, so, rank_id, id_rank, first_lo, int(index.max_piece_length))


def kn_view(lm: Any, vocab: D.SortedVocab) -> D.KNView:
    """The Kneser-Ney tables plus the sums that make range queries cheap in this vocabulary's order."""
    p1, words, child_start, counts, denom, gamma, disc = lm.tables()
    p1r = p1[vocab.rank_id]
    p1c = np.zeros(len(p1r) + 1, dtype=np.float64)
    np.cumsum(p1r, out=p1c[1:])
    p1_first = np.bincount(vocab.sb[vocab.so[:-1]], weights=p1r, minlength=256).astype(np.float64)
    big = big_tables(child_start, words, counts, disc, vocab.id_rank, vocab.sb, vocab.so, len(child_start) - 1,
                     BIG_CONTEXT)
    return D.KNView(int(lm.order), p1, words, child_start, counts, denom, gamma, disc, p1c, p1_first, *big)


class ByteLevelLM:
    """A token LM seen as a model of bytes, through a tokenizer (see the module docstring).

    ``lm``: a :class:`bytepiece.continuation.lm.NGramLM` (compiled dynamic program) or any object with
    ``next_token_logprobs(context_ids)`` over the tokenizer's ids (generic recursion; an LM that
    looks at the whole history makes the number of states grow with the number of tilings of the
    tail, and ``max_states`` caps it, keeping the most probable states: the result is then
    approximate and the cursor's ``exact`` attribute says so). With the Kneser-Ney model the
    states stay exact: a position that needs more than ``max_states`` raises instead. Tokens
    without bytes (special tokens) are left out: probabilities are conditional on none of them
    being generated.
    """

    def __init__(self, tokenizer: Any, lm: TokenLM, *, index: VocabIndex | None = None,
                 max_states: int = DEFAULT_MAX_STATES) -> None:
        from .lm import NGramLM

        if not callable(getattr(lm, "next_token_logprobs", None)):
            raise InputError("lm must have a next_token_logprobs(context_ids) method (see bytepiece.continuation.TokenLM)")
        if getattr(lm, "vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
            raise InputError(f"the LM predicts {lm.vocab_size} ids but the tokenizer has {tokenizer.vocab_size}; "
                             "train the LM on this tokenizer's ids")
        if not isinstance(max_states, int) or max_states < 1:
            raise InputError(f"max_states must be a positive integer, got {max_states!r}")
        self.tokenizer = tokenizer
        self.lm = lm
        self.index = index or VocabIndex.from_tokenizer(tokenizer)
        self.vocab = sorted_vocab(self.index)
        self.max_states = max_states
        self._kn = kn_view(lm, self.vocab) if isinstance(lm, NGramLM) else None

    def cursor(self, context: Sequence[int] = (), data: bytes = b"", *, constrained: int = 0,
               bias: float | None = None) -> Cursor:
        """A cursor on the bytes ``data`` after the tokens ``context``.

        ``constrained = 0``: probabilities are conditional on ``data`` (the exact distribution).
        ``constrained = n``: the first n bytes are a required prefix met the way token healing
        meets it: each token that starts inside it is drawn from the LM renormalised over the
        tokens that agree with the pending bytes (``bias=None``), or with those tokens' weight
        multiplied by ``exp(bias)`` and the others still possible (soft healing); the cursor's
        masses are then the probabilities of that generation process, not conditionals.
        """
        data = bytes(data)
        if not 0 <= constrained <= len(data):
            raise InputError(f"constrained must be between 0 and len(data) = {len(data)}, got {constrained}")
        if bias is not None and not (isinstance(bias, (int, float)) and math.isfinite(bias)):
            raise InputError(f"bias must be a finite number of nats (or None for a hard constraint), got {bias!r}")
        ctx = [int(t) for t in context]
        if self._kn is not None:
            return ByteCursor(self, ctx, data, constrained, math.inf if bias is None else float(bias))
        from .generic import GenericCursor

        return GenericCursor(self, ctx, data, constrained, math.inf if bias is None else float(bias))

    def prompt_cursor(self, prompt: str | bytes) -> Cursor:
        """Exact cursor after ``prompt``: its stable prefix as context, the rest as bytes."""
        split = stable_split(self.tokenizer, prompt, index=self.index, vocab=self.vocab)
        return self.cursor(split.ids, split.tail)

    def next_byte_probs(self, prompt: str | bytes) -> npt.NDArray[np.float64]:
        """P(next byte | prompt) for the 256 byte values."""
        return self.prompt_cursor(prompt).probs()

    def logprob(self, prompt: str | bytes, continuation: str | bytes) -> float:
        """Natural-log probability that ``prompt`` goes on with ``continuation`` (bytes as given; a
        str is UTF-8 encoded without normalization)."""
        data = continuation.encode("utf-8") if isinstance(continuation, str) else bytes(continuation)
        return self.prompt_cursor(prompt).score(data)

    def greedy(self, prompt: str | bytes, max_bytes: int) -> bytes:
        """The most probable byte, ``max_bytes`` times."""
        return self.prompt_cursor(prompt).greedy(max_bytes)

    def sample(self, prompt: str | bytes, max_bytes: int, *, temperature: float = 1.0, seed: Seed = None) -> bytes:
        """``max_bytes`` bytes drawn one at a time from the exact distribution (``temperature``
        rescales each byte distribution's log-probabilities)."""
        return self.prompt_cursor(prompt).sample(max_bytes, temperature=temperature, seed=seed)

    def next_char_probs(self, prompt: str | bytes, *, top: int = 10) -> list[tuple[bytes, float]]:
        """The ``top`` most probable next characters (UTF-8 sequences, as bytes) with their
        probabilities, most probable first: best-first search over byte prefixes, which is exact
        because a prefix is never less probable than a character it starts."""
        if not isinstance(top, int) or top < 1:
            raise InputError(f"top must be a positive integer, got {top!r}")
        cur = self.prompt_cursor(prompt)
        n0 = len(cur)
        heap: list[tuple[float, bytes]] = [(-1.0, b"")]
        found: list[tuple[bytes, float]] = []
        while heap and len(found) < top:
            neg, pre = heapq.heappop(heap)
            if pre and len(pre) == char_length(pre[0]):
                found.append((pre, -neg))
                continue
            cur.truncate(n0)
            cur.extend(pre)
            p = cur.probs()
            for b in np.flatnonzero(p > 0).tolist():
                heapq.heappush(heap, (neg * float(p[b]), pre + bytes([b])))
        return found


def char_length(lead: int) -> int:
    """Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and stray continuation bytes)."""
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    if lead >= 0xC0:
        return 2
    return 1


class ByteCursor:
    """Position after some bytes; query the next byte, append, go back (Kneser-Ney kernels)."""

    exact = True

    def __init__(self, owner: ByteLevelLM, context: list[int], data: bytes, constrained: int, log_bias: float) -> None:
        self._V = owner.vocab
        self._T = cast(D.KNView, owner._kn)  # ByteLevelLM makes this cursor only for a Kneser-Ney LM
        self._max_states = owner.max_states
        keep = max(self._T.order - 1, 0)
        self._context = np.array(context[len(context) - keep:] if keep else [], dtype=np.int32)
        self._nl = constrained
        self._log_bias = log_bias
        self._k = min(_FIRST_STATES, self._max_states)
        self._ring = constrained + self._V.max_len + 2 + BACKTRACK_BYTES
        self._out = np.empty(256, dtype=np.float64)
        self._rebuild(data)

    def _rebuild(self, data: bytes) -> None:
        arr = np.frombuffer(data, dtype=np.uint8)
        while True:
            S = D.make_state(self._ring, self._V.max_len, self._k, self._T.order)
            D.start(self._T, S, self._context)
            if D.build(self._V, self._T, S, arr, self._nl, self._log_bias) == D.OK:
                break
            self._grow()
        self._S = S
        self._data = bytearray(data)
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

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        """The bytes after the context (the constrained prefix included)."""
        return bytes(self._data)

    def probs(self) -> npt.NDArray[np.float64]:
        """P(next byte | bytes so far), 256 values summing to 1."""
        D.probs(self._V, self._T, self._S, self._out)
        return self._out.copy()

    def log_mass(self) -> float:
        """Natural log of the probability of the bytes so far (relative to the context); 0 for
        none, and about 0 for a hard-constrained prefix."""
        return float(D.probs(self._V, self._T, self._S, self._out))

    def push(self, byte: int) -> None:
        self.extend(bytes([byte]))

    def extend(self, data: bytes) -> None:
        for b in data:
            while D.push(self._V, self._T, self._S, np.uint8(b)) != D.OK:
                self._grow()
                self._rebuild(bytes(self._data))
            self._data.append(b)
        self._high = max(self._high, len(self._data))

    def score(self, data: bytes) -> float:
        """Natural-log probability of ``data`` after the bytes so far; the cursor moves past it."""
        arr = np.frombuffer(bytes(data), dtype=np.uint8)

        def run():
            return D.score(self._V, self._T, self._S, arr, self._out)

        total = self._retry(run)
        self._data.extend(arr.tobytes())
        self._high = max(self._high, len(self._data))
        return float(total)

    def greedy(self, n: int) -> bytes:
        """Append the most probable byte ``n`` times (ties: the lowest byte); returns them."""
        result = np.zeros(max(n, 0), dtype=np.uint8)

        def run():
            return D.greedy(self._V, self._T, self._S, len(result), result, self._out), None

        self._retry(run)
        self._data.extend(result.tobytes())
        self._high = max(self._high, len(self._data))
        return result.tobytes()

    def sample(self, n: int, *, temperature: float = 1.0, seed: Seed = None) -> bytes:
        """Append ``n`` bytes drawn from the byte distributions; returns them."""
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
        """Go back to the first ``n`` bytes (not into a constrained prefix)."""
        if not self._nl <= n <= len(self._data):
            raise InputError(f"can truncate to {self._nl}..{len(self._data)} bytes, not {n}")
        if n > self._high - self._ring + self._V.max_len:
            self._S.meta[0] = n
            del self._data[n:]
        else:
            self._rebuild(bytes(self._data[:n]))


Cursor = Union[ByteCursor, "GenericCursor"]
