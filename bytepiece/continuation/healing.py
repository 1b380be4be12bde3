"""Token healing: continue a prompt that may end inside a token, with any language model.

A prompt cut in the middle of a frequent string ends with a token the model almost never saw
followed by the rest of that string (the "large-vocabulary continuation problem"). Healing
removes the last ``k`` prompt tokens, keeps their bytes as a *required prefix*, and constrains
the first generated tokens to agree with it: a token is allowed while the prefix is pending if
its bytes start with the whole remaining prefix (the constraint is then met) or if it is a
proper prefix of it (the rest stays pending for the next step).

Which tokens agree with a pending prefix is a vocabulary query (:class:`.vocab.VocabIndex`).

:func:`generate` is a greedy / sampling loop over a callable ``next_logprobs(ids) -> array``,
so the same healing applies to any LM: the n-gram model of the harness, a neural model, or a
remote API that returns scores.

Named strategies (:data:`STRATEGIES`, accepted by :func:`heal`; :func:`bytepiece.continuation.complete`
runs any of them end to end): ``naive`` (no back-off), ``healing`` (back off one token, hard
constraint), ``healing-d1`` (back off while one vocabulary token can still cover every removed
byte), ``healing-3`` (back off three tokens; the constraint then spans several steps), ``soft``
(back off one token but only add ``bias`` nats to the tokens that agree with it: the others stay
possible and, if chosen, rewrite the end of the prompt) and ``exact-canonical``, ``exact-stable``,
``exact-all`` (no back-off at all: the byte-level distribution of
:class:`bytepiece.continuation.ByteLevelLM` over the token sequences its name says, see
:data:`bytepiece.continuation.split.TOKENIZATIONS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .context import last_tokens
from .split import TOKENIZATIONS
from .vocab import PieceSource, VocabIndex

__all__ = ["STRATEGIES", "TOKEN_STRATEGIES", "DEFAULT_SOFT_BIAS", "HealedPrompt", "Generation", "heal", "generate",
           "allowed_tokens", "backoff_of", "check_strategy", "exact_tokenizations"]

TOKEN_STRATEGIES = ("naive", "healing", "healing-d1", "healing-3", "soft")
STRATEGIES = TOKEN_STRATEGIES + tuple(f"exact-{t}" for t in TOKENIZATIONS)
DEFAULT_SOFT_BIAS = 3.0  # nats added to the agreeing tokens by the "soft" strategy (x20 in probability)
_BACKOFF: dict[str, int | str] = {"naive": 0, "healing": 1, "healing-d1": "cover", "healing-3": 3, "soft": 1}


def check_strategy(strategy: str) -> str:
    """``strategy`` if it is one of :data:`STRATEGIES`; InputError naming them otherwise."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return strategy


def exact_tokenizations(strategy: str) -> str | None:
    """The token sequences an ``exact-*`` strategy sums over (``"canonical"``, ``"stable"``,
    ``"all"``); None for a token strategy."""
    check_strategy(strategy)
    return strategy.removeprefix("exact-") if strategy.startswith("exact-") else None


def backoff_of(strategy: str) -> int | str:
    """Tokens a strategy backs off: a count, or ``"cover"`` (see :func:`heal`)."""
    if exact_tokenizations(strategy) is not None:
        raise InputError(f"the {strategy} strategy backs off no tokens; use bytepiece.continuation.ByteLevelLM")
    return _BACKOFF[strategy]


Seed = Union[int, np.random.Generator, None]



def allowed_tokens(tokenizer: PieceSource, prefix: bytes) -> npt.NDArray[np.int64]:
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
        tail = tokenizer.decode_bytes(last_tokens(ids, n))
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
    return HealedPrompt(ids, ids[: len(ids) - n], tokenizer.decode_bytes(last_tokens(ids, n)))


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
