"""Intrinsic metrics of a tokenization: what the tokens of a held-out text look like, without a
language model.

Every function works on a *count vector*: ``counts[i]`` is how often piece ``i`` of the
vocabulary occurs in the tokens of a text (:func:`token_counts`), so the vocabulary is the
vector's length and unused pieces are zeros. The definitions and their sources are in
docs/evaluation.md ("Intrinsic metrics"):

* Rényi entropy and efficiency of the unigram token distribution (Zouhar et al. 2023,
  "Tokenization and the Noiseless Channel"): :func:`renyi_entropy`, :func:`renyi_efficiency`;
* vocabulary utilization, the share of pieces that occur at all: :func:`vocabulary_utilization`;
* token lengths in bytes, their mean and distribution: :func:`token_lengths`;
* tokens per byte of each language and the parity between languages (Petrov et al. 2023,
  "Language Model Tokenizers Introduce Unfairness Between Languages"): :func:`parity`.

:func:`profile` and :func:`pooled_profile` assemble them into the ``intrinsic`` entries of
``bytepiece eval run``'s JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InputError

#: the orders of Rényi efficiency the harness reports; 2.5 is the one Zouhar et al. found to
#: predict BLEU best, 1 is Shannon entropy
RENYI_ALPHAS = (1.0, 2.0, 2.5, 3.0)


def token_counts(ids: npt.ArrayLike, vocab_size: int, *, first_id: int = 0) -> npt.NDArray[np.int64]:
    """Occurrences of ids ``first_id .. vocab_size - 1`` in ``ids`` (``first_id``: the first id
    that is a piece; special ids below it never come out of encoding and are not counted)."""
    arr = np.asarray(ids, dtype=np.int64).ravel()
    if arr.size and (arr.min() < first_id or arr.max() >= vocab_size):
        raise InputError(f"token ids must lie in [{first_id}, {vocab_size}); got ids from {arr.min()} to {arr.max()}")
    return np.bincount(arr - first_id, minlength=vocab_size - first_id).astype(np.int64)


def _checked(counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``counts`` as a float vector, refused when it is not a non-empty 1-D vector of finite
    counts >= 0 with at least one token."""
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"counts must be a non-empty 1-D vector (one count per piece), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError("counts must be finite numbers >= 0 (occurrences of each piece)")
    if arr.sum() <= 0:
        raise InputError("no tokens to measure: the text is empty; give a text that encodes to at least one token")
    return arr


def _vocab(counts: npt.NDArray[np.float64], vocab_size: int | None) -> int:
    if vocab_size is None:
        return len(counts)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < len(counts):
        raise InputError(f"vocab_size must be an integer >= the length of counts ({len(counts)}), got {vocab_size!r}")
    return int(vocab_size)


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if math.isnan(a) or a < 0:
        raise InputError(f"the order alpha of a Rényi entropy must be >= 0 (or inf), got {alpha!r}")
    return a


def renyi_entropy(counts: npt.ArrayLike, alpha: float) -> float:
    """Rényi entropy of order ``alpha`` (nats) of the distribution ``counts / counts.sum()``:
    ``log(sum p**alpha) / (1 - alpha)``; its limits at alpha = 1 (Shannon, ``-sum p log p``),
    0 (log of the number of pieces used) and inf (``-log max p``) are computed directly."""
    a = _check_alpha(alpha)
    c = _checked(counts)
    c = c[c > 0]
    logp = np.log(c) - math.log(c.sum())
    if a == 0.0:
        h = math.log(len(c))
    elif a == 1.0:
        h = -float(np.sum(np.exp(logp) * logp))
    elif math.isinf(a):
        h = -float(logp.max())
    elif abs(a - 1.0) < 0.5:  # sum p**alpha = 1 + sum p * expm1((alpha - 1) log p): no cancellation near 1
        d = a - 1.0
        h = -math.log1p(float(np.sum(np.exp(logp) * np.expm1(d * logp)))) / d
    else:  # log-sum-exp: p**alpha of rare pieces underflows long before the sum does
        scaled = a * logp
        top = float(scaled.max())
        h = (top + math.log(float(np.sum(np.exp(scaled - top))))) / (1.0 - a)
    return max(h, 0.0)  # -0.0 and rounding below zero for a one-piece distribution


def renyi_efficiency(counts: npt.ArrayLike, alpha: float, *, vocab_size: int | None = None) -> float:
    """Rényi entropy of order ``alpha`` over its largest possible value, the log of the
    vocabulary size (``len(counts)`` unless ``vocab_size`` is given): 1 when every piece is
    equally frequent, 0 when a single piece is all the text. Needs a vocabulary of 2 or more."""
    c = _checked(counts)
    v = _vocab(c, vocab_size)
    if v < 2:
        raise InputError("Rényi efficiency needs a vocabulary of at least 2 pieces (log 1 = 0)")
    return min(renyi_entropy(c, alpha) / math.log(v), 1.0)


def vocabulary_utilization(counts: npt.ArrayLike, *, vocab_size: int | None = None) -> float:
    """The share of the vocabulary that occurs at least once."""
    c = _checked(counts)
    return int(np.count_nonzero(c)) / _vocab(c, vocab_size)


def _quantile(cum: npt.NDArray[np.float64], q: float) -> int:
    """The smallest length (index + 1) whose cumulative share reaches ``q``."""
    return int(np.searchsorted(cum, q - 1e-12, side="left")) + 1


def token_lengths(counts: npt.ArrayLike, lengths: npt.ArrayLike) -> dict:
    """Lengths in bytes of the tokens of a text (``lengths[i]``: bytes of piece ``i``).

    ``mean``, ``median``, ``p90`` and ``max`` are over token occurrences (a quantile is the
    shortest length that at least that share of tokens does not exceed); ``shares[k]`` is the
    share of tokens that are ``k + 1`` bytes long, up to ``max``; ``vocabulary_mean`` is the mean
    length of the pieces of the vocabulary, each counted once, used or not.
    """
    c = _checked(counts)
    lens = np.asarray(lengths, dtype=np.int64)
    if lens.shape != c.shape or (lens.size and lens.min() < 1):
        raise InputError(f"lengths must give a length >= 1 byte for each of the {len(c)} pieces, "
                         f"got shape {lens.shape}")
    hist = np.bincount(lens, weights=c)[1:]
    longest = int(np.flatnonzero(hist).max()) + 1
    shares = hist[:longest] / c.sum()
    cum = np.cumsum(shares)
    return {"mean": float(np.dot(c, lens) / c.sum()), "median": _quantile(cum, 0.5), "p90": _quantile(cum, 0.9),
            "max": longest, "shares": [float(s) for s in shares], "vocabulary_mean": float(lens.mean())}


def parity(tokens_per_byte: Mapping[str, float]) -> dict:
    """Tokens per byte of several languages (texts) compared: ``premium[name]`` is a language's
    tokens per byte over the lowest among them (1 for the best-served language), ``ratio`` the
    highest over the lowest (1 is parity)."""
    if not tokens_per_byte:
        raise InputError("parity needs the tokens per byte of at least one text")
    values = np.array([float(v) for v in tokens_per_byte.values()])
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"tokens per byte must be positive numbers, got {dict(tokens_per_byte)!r}")
    low = float(values.min())
    return {"premium": {k: float(v) / low for k, v in tokens_per_byte.items()}, "ratio": float(values.max()) / low}


def profile(counts: npt.ArrayLike, lengths: npt.ArrayLike, *, raw_bytes: int,
            alphas: Sequence[float] = RENYI_ALPHAS) -> dict:
    """The ``intrinsic`` entry of one text in eval's JSON: token and byte counts, tokens per
    byte (UTF-8 bytes of the text as given), Rényi efficiency keyed by ``f"{alpha:g}"``,
    vocabulary utilization and the token lengths."""
    c = _checked(counts)
    if raw_bytes <= 0:
        raise InputError(f"raw_bytes must be the text's UTF-8 size (> 0), got {raw_bytes!r}")
    tokens = int(c.sum())
    return {"tokens": tokens, "bytes": int(raw_bytes), "tokens_per_byte": tokens / raw_bytes,
            "vocab_size": len(c), "types_used": int(np.count_nonzero(c)),
            "renyi_efficiency": {f"{float(a):g}": renyi_efficiency(c, a) for a in alphas},
            "vocabulary_utilization": vocabulary_utilization(c), "token_length": token_lengths(c, lengths)}


def pooled_profile(texts: Mapping[str, tuple[npt.ArrayLike, int]], lengths: npt.ArrayLike, *,
                   alphas: Sequence[float] = RENYI_ALPHAS) -> dict:
    """:func:`profile` of several texts together (``texts[name] = (counts, raw_bytes)``, counts
    summed), plus the ``parity`` of their tokens per byte."""
    if not texts:
        raise InputError("no texts to pool; give at least one held-out text")
    if any(int(b) <= 0 for _, b in texts.values()):
        raise InputError("every pooled text needs its UTF-8 size in bytes (> 0)")
    total = np.sum([np.asarray(c, dtype=np.int64) for c, _ in texts.values()], axis=0)
    out = profile(total, lengths, raw_bytes=sum(int(b) for _, b in texts.values()), alphas=alphas)
    per_text = {name: float(np.sum(c)) / int(b) for name, (c, b) in texts.items()}
    out["parity"] = {"tokens_per_byte": per_text, **parity(per_text)}
    return out


__all__ = ["RENYI_ALPHAS", "parity", "pooled_profile", "profile", "renyi_efficiency", "renyi_entropy", "token_counts",
           "token_lengths", "vocabulary_utilization"]
