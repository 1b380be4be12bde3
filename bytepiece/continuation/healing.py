"""Token healing: continue a prompt that may end inside a token, with any language model.

A prompt cut in the middle of a frequent string ends with a token the model almost never saw
followed by the rest of that string (the "large-vocabulary continuation problem"). Healing
removes the last ``k`` prompt tokens, keeps their bytes as a *required prefix*, and constrains
the first generated tokens to agree with it: a token is allowed while the prefix is pending if
its bytes start with the whole remaining prefix (the constraint is then met) or if it is a
proper prefix of it (the rest stays pending for the next step).

Vocabulary queries (:class:`VocabIndex`): the pieces sorted lexicographically make "tokens
starting with P" one contiguous range, found by two binary searches (O(log V), independent of
how many tokens match); "tokens that are a proper prefix of P" are at most ``len(P) - 1``
hash lookups. Both work for any vocabulary size and any tokenizer that can list its pieces.

:func:`generate` is a greedy / sampling loop over a callable ``next_logprobs(ids) -> array``,
so the same healing applies to any LM: the n-gram model of the harness, a neural model, or a
remote API that returns scores.

Named strategies (:data:`STRATEGIES`, accepted by :func:`heal`; :func:`bytepiece.continuation.strategies.complete`
runs any of them end to end): ``naive`` (no back-off), ``healing`` (back off one token, hard
constraint), ``healing-d1`` (back off while one vocabulary token can still cover every removed
byte), ``healing-3`` (back off three tokens; the constraint then spans several steps), ``soft``
(back off one token but only add ``bias`` nats to the tokens that agree with it: the others stay
possible and, if chosen, rewrite the end of the prompt) and ``exact`` (no back-off at all: the
byte-level distribution of :mod:`bytepiece.continuation.byte_lm`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np
import numpy.typing as npt

from ..errors import InputError

__all__ = ["STRATEGIES", "DEFAULT_SOFT_BIAS", "VocabIndex", "HealedPrompt", "Generation", "heal", "generate",
           "allowed_tokens", "backoff_of"]

STRATEGIES = ("naive", "healing", "healing-d1", "healing-3", "soft", "exact")
DEFAULT_SOFT_BIAS = 3.0  # nats added to the agreeing tokens by the "soft" strategy (x20 in probability)
_BACKOFF: dict[str, int | str] = {"naive": 0, "healing": 1, "healing-d1": "cover", "healing-3": 3, "soft": 1}


def backoff_of(strategy: str) -> int | str:
    """Tokens a strategy backs off: a count, or ``"cover"`` (see :func:`heal`)."""
    if strategy == "exact":
        raise InputError("the exact strategy backs off no tokens; use bytepiece.continuation.ByteLevelLM")
    try:
        return _BACKOFF[strategy]
    except KeyError:
        raise InputError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}") from None


class _PieceSource(Protocol):
    @property
    def vocab_size(self) -> int: ...

    def pieces(self) -> list[bytes]: ...


Seed = Union[int, np.random.Generator, None]


class VocabIndex:
    """Prefix queries over a vocabulary: ``pieces[i]`` is the byte string of id ``first_id + i``.

    Build it from a :class:`~bytepiece.Tokenizer` (``VocabIndex.from_tokenizer``) or from any
    list of token byte strings (for other tokenizers: ``VocabIndex(pieces, first_id=...)``;
    empty pieces, e.g. special tokens, are never allowed by a prefix constraint).
    """

    def __init__(self, pieces: Sequence[bytes], *, first_id: int = 0, vocab_size: int | None = None) -> None:
        if first_id < 0:
            raise InputError(f"first_id must be >= 0, got {first_id}")
        pieces = [bytes(p) for p in pieces]
        self.first_id = first_id
        self.vocab_size = vocab_size if vocab_size is not None else first_id + len(pieces)
        if self.vocab_size < first_id + len(pieces):
            raise InputError(f"vocab_size {self.vocab_size} is smaller than first_id + len(pieces)")
        self._by_id: list[bytes] = [b""] * first_id + pieces + [b""] * (self.vocab_size - first_id - len(pieces))
        order = sorted((i for i in range(len(pieces)) if pieces[i]), key=pieces.__getitem__)
        self._sorted: list[bytes] = [pieces[i] for i in order]
        self._sorted_ids = np.array(order, dtype=np.int64) + first_id
        self._to_id: dict[bytes, int] = {}
        for i in order:  # on duplicate pieces the lowest id wins
            self._to_id.setdefault(pieces[i], i + first_id)
        self.max_piece_length = max((len(p) for p in pieces), default=0)
        self._pad = b"\xff" * (self.max_piece_length + 1)

    @classmethod
    def from_tokenizer(cls, tokenizer: _PieceSource) -> VocabIndex:
        """Index of a bytepiece :class:`~bytepiece.Tokenizer` (ids 0-2 are special, pieces from 3)."""
        pieces = tokenizer.pieces()
        first = tokenizer.vocab_size - len(pieces)
        return cls(pieces, first_id=first, vocab_size=tokenizer.vocab_size)

    def piece(self, token_id: int) -> bytes:
        """Bytes of ``token_id`` (empty for special tokens)."""
        return self._by_id[token_id]

    def extension_range(self, prefix: bytes) -> tuple[int, int]:
        """``(lo, hi)``: the tokens whose bytes start with ``prefix`` are ``sorted_ids[lo:hi]``."""
        lo = bisect.bisect_left(self._sorted, prefix)
        hi = bisect.bisect_right(self._sorted, prefix + self._pad, lo)
        return lo, hi

    @property
    def sorted_ids(self) -> npt.NDArray[np.int64]:
        """Token ids in lexicographic order of their bytes (read-only view)."""
        view = self._sorted_ids.view()
        view.flags.writeable = False
        return view

    def extensions(self, prefix: bytes) -> npt.NDArray[np.int64]:
        """Ids of the tokens whose bytes start with ``prefix`` (lexicographic order)."""
        lo, hi = self.extension_range(prefix)
        return self._sorted_ids[lo:hi]

    def id_of(self, piece: bytes) -> int:
        """Id of the token whose bytes are ``piece``, or -1."""
        return self._to_id.get(piece, -1)

    def has_longer(self, prefix: bytes) -> bool:
        """Whether some token's bytes start with ``prefix`` and go on beyond it: the cut after
        ``prefix`` could fall inside that token."""
        lo, hi = self.extension_range(prefix)
        return hi - lo > 1 or (hi - lo == 1 and len(self._sorted[lo]) > len(prefix))

    def sorted_pieces(self) -> list[bytes]:
        """The non-empty pieces in lexicographic order (``sorted_ids`` gives their ids)."""
        return list(self._sorted)

    def proper_prefixes(self, prefix: bytes) -> list[int]:
        """Ids of the tokens that are a proper (shorter, non-empty) prefix of ``prefix``, shortest first."""
        to_id = self._to_id
        top = min(len(prefix), self.max_piece_length + 1)
        return [to_id[prefix[:j]] for j in range(1, top) if prefix[:j] in to_id]

    def allowed(self, prefix: bytes) -> npt.NDArray[np.int64]:
        """Every id consistent with a pending ``prefix``: extensions, then proper prefixes."""
        ext = self.extensions(prefix)
        short = self.proper_prefixes(prefix)
        if not short:
            return ext
        return np.concatenate([ext, np.array(short, dtype=np.int64)])

    def allowed_mask(self, prefix: bytes, out: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
        """Boolean mask over the vocabulary of the ids :meth:`allowed` returns."""
        if out is None:
            out = np.zeros(self.vocab_size, dtype=np.bool_)
        else:
            out[:] = False
        out[self.allowed(prefix)] = True
        return out

    def advance(self, prefix: bytes, token_id: int) -> bytes | None:
        """The prefix still pending after emitting ``token_id``, or None if it is not allowed."""
        piece = self._by_id[token_id]
        if not piece:
            return None if prefix else b""
        if piece.startswith(prefix):
            return b""
        if prefix.startswith(piece):
            return prefix[len(piece):]
        return None


def allowed_tokens(tokenizer: _PieceSource, prefix: bytes) -> npt.NDArray[np.int64]:
    """Ids consistent with the byte ``prefix`` (convenience; build a :class:`VocabIndex` once
    for repeated queries)."""
    return VocabIndex.from_tokenizer(tokenizer).allowed(prefix)


@dataclass(frozen=True)
class HealedPrompt:
    """A prompt with its last tokens backed off: generate after ``kept_ids`` and require the
    continuation to start with ``prefix`` (the removed tokens' bytes)."""

    prompt_ids: list[int]
    kept_ids: list[int]
    prefix: bytes

    @property
    def removed(self) -> int:
        return len(self.prompt_ids) - len(self.kept_ids)


class _Tokenizer(Protocol):
    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str | bytes) -> list[int]: ...
    def decode_bytes(self, ids) -> bytes: ...
    def pieces(self) -> list[bytes]: ...


def heal(
    tokenizer: _Tokenizer,
    prompt: str | bytes | Sequence[int],
    k: int | str = 1,
    *,
    index: VocabIndex | None = None,
) -> HealedPrompt:
    """Back off the last ``k`` tokens of ``prompt`` (text, or already its token ids).

    ``k="cover"`` backs off as long as some single vocabulary token starts with all the removed
    bytes (at least one token), so the first generated token can still cover the whole tail.
    ``k`` may also name a strategy of :data:`STRATEGIES` (its back-off, see :func:`backoff_of`).
    """
    if isinstance(k, str) and k != "cover":
        k = backoff_of(k)
    ids = list(prompt) if not isinstance(prompt, (str, bytes)) else tokenizer.encode(prompt)
    if k == "cover":
        index = index or VocabIndex.from_tokenizer(tokenizer)
        n = min(1, len(ids))
        tail = tokenizer.decode_bytes(ids[len(ids) - n:])
        while n < len(ids):
            longer = tokenizer.decode_bytes(ids[-n - 1 : -n]) + tail
            lo, hi = index.extension_range(longer)
            if hi <= lo:
                break
            tail, n = longer, n + 1
        return HealedPrompt(ids, ids[: len(ids) - n], tail)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise InputError(f"k must be a non-negative number of tokens or 'cover', got {k!r}")
    n = min(int(k), len(ids))
    return HealedPrompt(ids, ids[: len(ids) - n], tokenizer.decode_bytes(ids[len(ids) - n:]))


@dataclass
class Generation:
    """Result of :func:`generate`: the new token ids, all their bytes (which start with the
    required prefix once it is met) and the continuation beyond the prefix."""

    ids: list[int] = field(default_factory=list)
    data: bytes = b""
    prefix: bytes = b""
    prefix_met: bool = True
    diverged: bool = False  # soft constraint only: a token that disagrees with the prefix was chosen

    @property
    def continuation(self) -> bytes:
        """Bytes generated beyond the required prefix (empty while it is not met)."""
        return self.data[len(self.prefix):] if self.prefix_met else b""

    def text(self, errors: str = "replace") -> str:
        return self.continuation.decode("utf-8", errors)


NextScores = Callable[[list[int]], npt.NDArray[np.floating]]


def generate(
    next_logprobs: NextScores,
    index: VocabIndex,
    ids: Sequence[int],
    prefix: bytes = b"",
    *,
    max_new_bytes: int | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: Seed = None,
    stop_ids: Sequence[int] = (),
    bias: float | None = None,
) -> Generation:
    """Generate after ``ids``, forcing the output to start with ``prefix``.

    ``next_logprobs(context_ids)`` returns a score for every id (a float array of the
    vocabulary's size): log-probabilities; for greedy decoding (``temperature == 0``) any
    increasing function of them, e.g. probabilities, gives the same result. While part of
    ``prefix`` is pending only :meth:`VocabIndex.allowed` ids are considered (the distribution
    renormalised over them). Greedy ties go to the lowest id.

    Stops after ``max_new_tokens`` tokens, when ``max_new_bytes`` bytes beyond the prefix exist,
    or after a token in ``stop_ids``.

    ``bias`` (nats) turns the hard constraint into a soft one: while part of ``prefix`` is
    pending, the agreeing ids get ``bias`` added to their score and every other id stays
    possible (scores must then be log-probabilities). Choosing one of the others rewrites the
    end of the prompt: generation stops there with ``diverged`` set and no continuation.
    """
    if temperature < 0 or not np.isfinite(temperature):
        raise InputError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if bias is not None and not np.isfinite(bias):
        raise InputError(f"bias must be a finite number of nats or None (hard constraint), got {bias!r}")
    rng = np.random.default_rng(seed) if temperature > 0 else None
    stop = set(int(i) for i in stop_ids)
    context = list(ids)
    out = Generation(prefix=prefix, prefix_met=not prefix)
    pending = prefix
    parts: list[bytes] = []
    produced = 0
    for _ in range(max_new_tokens):
        scores = np.asarray(next_logprobs(context))
        if scores.shape != (index.vocab_size,):
            raise InputError(f"next_logprobs returned shape {scores.shape}, expected ({index.vocab_size},)")
        if pending and bias is not None:
            cand = index.allowed(pending)
            biased = np.array(scores, dtype=np.float64)
            biased[cand] += bias
            token = _pick(biased, None, temperature, rng)
            if index.advance(pending, token) is None:
                out.ids.append(token)
                out.diverged = True
                parts.append(index.piece(token))
                break
        elif pending:
            cand = index.allowed(pending)
            token = _pick(scores[cand], cand, temperature, rng)
        else:
            token = _pick(scores, None, temperature, rng)
        piece = index.piece(token)
        context.append(token)
        out.ids.append(token)
        parts.append(piece)
        if pending:
            nxt = index.advance(pending, token)
            if nxt is None:  # cannot happen with VocabIndex.allowed; guards custom indexes
                raise InputError(f"token {token} does not agree with the pending prefix {pending!r}")
            produced += max(0, len(piece) - len(pending))
            pending = nxt
            out.prefix_met = not pending
        else:
            produced += len(piece)
        if token in stop:
            break
        if max_new_bytes is not None and not pending and produced >= max_new_bytes:
            break
    out.data = b"".join(parts)
    return out


def _pick(scores: npt.NDArray[np.floating], cand: npt.NDArray[np.int64] | None, temperature: float,
          rng: np.random.Generator | None) -> int:
    if temperature == 0:
        if cand is None:
            return int(np.argmax(scores))
        best = scores.max()
        return int(cand[scores == best].min()) if np.isfinite(best) else int(cand.min())
    if rng is None:
        raise InputError("sampling a continuation (temperature > 0) needs a random generator")
    logits = np.asarray(scores, dtype=np.float64) / temperature
    top = logits.max()
    if not np.isfinite(top):
        pool = cand if cand is not None else np.arange(len(scores))
        return int(rng.choice(pool))
    w = np.exp(logits - top)
    w /= w.sum()
    i = int(rng.choice(len(w), p=w))
    return int(cand[i]) if cand is not None else i
