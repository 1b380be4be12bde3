"""A token-level n-gram language model: interpolated modified Kneser-Ney (Chen & Goodman).

It is the default LM of the evaluation harness: trained in seconds on a few million token ids,
deterministic, and exact enough to compare tokenizers by bits per byte. Every probability is
interpolated down to a uniform distribution over the predictable ids, so no token ever gets
probability 0 and held-out text always has a finite likelihood.

Definition (``order`` n, context ``h`` = the last n-1 tokens, ``h'`` = ``h`` without its
oldest token)::

    p(w | h) = max(c(h w) - D_k(c(h w)), 0) / sum_x c(h x)  +  gamma(h) * p(w | h')
    gamma(h) = (D_k1 N1(h) + D_k2 N2(h) + D_k3 N3+(h)) / sum_x c(h x)
    p(w | empty) = max(c(w) - D_1(c(w)), 0) / sum_x c(x)  +  gamma(empty) / (vocab_size - min_id)

where ``c`` is the raw count for n-grams of the highest order and the continuation count
(number of distinct tokens seen directly before it) for lower orders, ``N_r(h)`` is the number
of tokens following ``h`` with count ``r`` (``N3+``: count >= 3) and the discounts ``D_k1,
D_k2, D_k3`` of n-grams of length ``k`` come from the count-of-counts ``n_r`` of that level:
``Y = n1 / (n1 + 2 n2)``, ``D_kr = r - (r + 1) Y n_{r+1} / n_r``. A context never seen (or
whose continuations all have count 0) leaves the lower-order distribution unchanged.

Documents (``offsets``) are independent: n-grams never cross a document boundary and the first
tokens of a document are predicted from the shorter context available. There are no sentence
markers; the harness gives each file (or the whole training corpus) as one document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels import kn as K
from .context import last_tokens

DEFAULT_ORDER = 4
MAX_ORDER = 10
_DEFAULT_DISCOUNTS = (0.5, 1.0, 1.5)
_MIN_DISCOUNT = 0.01
_MASK32 = np.uint64(0xFFFFFFFF)

IdArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class _Tables:
    p1: npt.NDArray[np.float64]
    words: npt.NDArray[np.int32]
    child_start: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int32]
    denom: npt.NDArray[np.float64]
    gamma: npt.NDArray[np.float64]
    disc: npt.NDArray[np.float64]

    def args(self) -> tuple:
        return (self.p1, self.words, self.child_start, self.counts, self.denom, self.gamma, self.disc)


class NGramLM:
    """Interpolated modified Kneser-Ney n-gram LM over token ids ``min_id .. vocab_size-1``.

    Build one with :meth:`train`. Queries: :meth:`next_probs` / :meth:`next_logprobs` (the full
    distribution over the vocabulary after a context; calling the model is ``next_logprobs``, so
    it plugs into :func:`bytepiece.continuation.healing.generate`), :meth:`prob`, :meth:`token_logprobs` and
    :meth:`bits` (total ``-log2`` likelihood of documents).
    """

    def __init__(self, *, order: int, vocab_size: int, min_id: int, tables: _Tables, level_sizes: list[int],
                 num_tokens: int) -> None:
        self.order = order
        self.vocab_size = vocab_size
        self.min_id = min_id
        self._t = tables
        self.level_sizes = level_sizes
        self.num_tokens = num_tokens

    def __repr__(self) -> str:
        return (f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, tokens={self.num_tokens}, "
                f"ngrams={self.level_sizes})")

    @property
    def discounts(self) -> npt.NDArray[np.float64]:
        """``discounts[k - 1] = (D1, D2, D3+)`` of n-grams of length k."""
        return self._t.disc[1:, 1:].copy()

    @property
    def nbytes(self) -> int:
        t = self._t
        return sum(a.nbytes for a in (t.p1, t.words, t.child_start, t.counts, t.denom, t.gamma, t.disc))

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        ids: Sequence[int] | npt.NDArray[np.integer],
        vocab_size: int,
        *,
        order: int = DEFAULT_ORDER,
        offsets: Sequence[int] | npt.NDArray[np.integer] | None = None,
        min_id: int = 0,
        discounts: Sequence[float] | npt.NDArray[np.floating] | None = None,
    ) -> NGramLM:
        """Count the n-grams of ``ids`` (documents ``ids[offsets[d]:offsets[d+1]]``; one document
        when ``offsets`` is None) and build the model.

        ``min_id``: ids below it (special tokens) are never predicted and may not occur in
        ``ids``. ``discounts``: fixed ``(D1, D2, D3+)`` for every level, or an ``(order, 3)``
        array, instead of the count-of-counts estimates.
        """
        if not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
            raise InputError(f"order must be an integer from 1 to {MAX_ORDER}, got {order!r}")
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1 or vocab_size >= 1 << 31:
            raise InputError(f"vocab_size must be a positive integer below 2**31, got {vocab_size!r}")
        if not isinstance(min_id, (int, np.integer)) or not 0 <= min_id < vocab_size:
            raise InputError(f"min_id must be in 0..vocab_size-1 ({vocab_size - 1}), got {min_id!r}")
        order, vocab_size, min_id = int(order), int(vocab_size), int(min_id)
        arr = _as_ids(ids, vocab_size, min_id, "ids")
        offs = _as_offsets(offsets, len(arr))
        fixed = _fixed_discounts(discounts, order)
        tables, sizes = _build(arr, offs, vocab_size, order, min_id, fixed)
        return cls(order=order, vocab_size=vocab_size, min_id=min_id, tables=tables, level_sizes=sizes,
                   num_tokens=len(arr))

    # -- queries ----------------------------------------------------------------------------
    def _context(self, context) -> IdArray:
        return np.ascontiguousarray(last_tokens(_as_ids(context, self.vocab_size, 0, "context"), self.order - 1))

    def next_probs(self, context: Sequence[int] | npt.NDArray[np.integer] = (), *,
                   out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
        """Probability of every id (a float64 vector of ``vocab_size`` summing to 1) after ``context``."""
        out = _out(out, self.vocab_size)
        K.next_probs(self._context(context), self.order, *self._t.args(), out)
        return out

    def next_logprobs(self, context: Sequence[int] | npt.NDArray[np.integer] = (), *,
                      out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
        """Natural-log probability of every id after ``context`` (``-inf`` for ids below ``min_id``)."""
        out = _out(out, self.vocab_size)
        K.next_logprobs(self._context(context), self.order, *self._t.args(), out)
        return out

    __call__ = next_logprobs

    def next_token_logprobs(self, context_ids: Sequence[int] | npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """The token-LM interface of :class:`bytepiece.continuation.ByteLevelLM` (same as ``next_logprobs``)."""
        return self.next_logprobs(context_ids)

    def next_token_logprobs_batch(self, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        """``next_token_logprobs`` of several contexts, one row each."""
        return self._rows(K.next_logprobs, contexts)

    def next_token_probs_batch(self, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        """``next_probs`` of several contexts, one row each: what the exact continuation's generic
        path needs, without a log here and an exp there (half its time on a 39k vocabulary)."""
        return self._rows(K.next_probs, contexts)

    def _rows(self, kernel: Any, contexts: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
        out = np.empty((len(contexts), self.vocab_size), dtype=np.float64)
        for i, ctx in enumerate(contexts):
            kernel(self._context(ctx), self.order, *self._t.args(), out[i])
        return out

    @property
    def context_size(self) -> int:
        """Tokens of context the model looks at: histories agreeing on them predict the same."""
        return self.order - 1

    def tables(self) -> tuple:
        """The arrays the kernels read (p1, words, child_start, counts, denom, gamma, disc); see
        :mod:`bytepiece.kernels.kn`. Read-only by contract: they are shared, not copied."""
        return self._t.args()

    def prob(self, context: Sequence[int] | npt.NDArray[np.integer], token: int) -> float:
        """Probability of ``token`` after ``context``."""
        return float(self.probs_of(context, [token])[0])

    def probs_of(self, context: Sequence[int] | npt.NDArray[np.integer],
                 tokens: Sequence[int] | npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """Probabilities of a few candidate ``tokens`` after ``context`` (the values ``next_probs``
        gives them, without computing the whole vector)."""
        cand = _as_ids(tokens, self.vocab_size, 0, "tokens")
        out = np.empty(len(cand), dtype=np.float64)
        K.token_probs(self._context(context), cand, self.order, *self._t.args(), out)
        return out

    def token_logprobs(self, ids: Sequence[int] | npt.NDArray[np.integer],
                       offsets: Sequence[int] | npt.NDArray[np.integer] | None = None) -> npt.NDArray[np.float64]:
        """Natural-log probability of each token given the tokens before it in its document."""
        arr = _as_ids(ids, self.vocab_size, 0, "ids")
        offs = _as_offsets(offsets, len(arr))
        out = np.empty(len(arr), dtype=np.float64)
        K.score_documents(arr, offs, self.order, *self._t.args(), out)
        return out

    def bits(self, ids: Sequence[int] | npt.NDArray[np.integer],
             offsets: Sequence[int] | npt.NDArray[np.integer] | None = None) -> float:
        """Total ``-log2`` likelihood of the documents (divide by their UTF-8 bytes for bits/byte)."""
        return float(-self.token_logprobs(ids, offsets).sum() / np.log(2.0))


# -- helpers --------------------------------------------------------------------------------
def _as_ids(ids, vocab_size: int, min_id: int, name: str) -> IdArray:
    try:
        arr = np.asarray(ids)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be a sequence of integer token ids") from e
    if arr.size == 0:
        return np.zeros(0, dtype=np.int32)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must be a 1-D sequence of integer token ids, got shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < min_id or hi >= vocab_size:
        bad = lo if lo < min_id else hi
        raise InputError(f"{name} contains id {bad}, outside {min_id}..{vocab_size - 1}; "
                         "pass the tokenizer's vocab_size (and min_id for special tokens)")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _as_offsets(offsets, n: int) -> npt.NDArray[np.int64]:
    if offsets is None:
        return np.array([0, n], dtype=np.int64)
    offs = np.ascontiguousarray(np.asarray(offsets), dtype=np.int64)
    if offs.ndim != 1 or len(offs) < 1 or offs[0] != 0 or offs[-1] != n or np.any(np.diff(offs) < 0):
        raise InputError(f"offsets must be non-decreasing, start at 0 and end at len(ids) = {n}")
    return offs


def _out(out, v: int) -> npt.NDArray[np.float64]:
    if out is None:
        return np.empty(v, dtype=np.float64)
    if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (v,)
            and out.flags.c_contiguous):
        raise InputError(f"out must be a contiguous float64 array of shape ({v},)")
    return out


def _fixed_discounts(discounts, order: int) -> npt.NDArray[np.float64] | None:
    if discounts is None:
        return None
    d = np.asarray(discounts, dtype=np.float64)
    if d.shape == (3,):
        d = np.tile(d, (order, 1))
    if d.shape != (order, 3) or not np.all(np.isfinite(d)) or np.any(d <= 0) or np.any(d > np.array([1, 2, 3])):
        raise InputError(f"discounts must be (D1, D2, D3+) or an ({order}, 3) array with 0 < Dr <= r")
    return d


def estimate_discounts(counts: npt.NDArray[np.integer]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts ``(D1, D2, D3+)`` from the counts of one level."""
    c = np.asarray(counts)
    n = np.bincount(np.clip(c[c > 0], 0, 5), minlength=6).astype(np.float64)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    if n1 == 0 or n2 == 0:
        return _DEFAULT_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    out = []
    for r, (nr, nr1) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        if nr == 0:
            out.append(_DEFAULT_DISCOUNTS[r - 1])
        else:
            out.append(float(min(max(r - (r + 1) * y * nr1 / nr, _MIN_DISCOUNT), r)))
    return out[0], out[1], out[2]


def _build(ids: IdArray, offsets, vocab_size: int, order: int, min_id: int, fixed):
    n = len(ids)
    ids64 = ids.astype(np.int64)
    starts = [0, 1, 1 + vocab_size]  # first entry of each level (level k starts at starts[k])
    words_parts = [np.array([-1], dtype=np.int32), np.arange(vocab_size, dtype=np.int32)]
    parent_parts: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64), np.zeros(vocab_size, np.int64)]
    raw_parts: list[npt.NDArray[np.int64]] = [np.zeros(1, np.int64), np.bincount(ids64, minlength=vocab_size)]
    cont_parts: list[npt.NDArray[np.int64] | None] = [None, None]
    ctx = ids64 + 1  # entry of the k-gram ending at each position (-1 where it crosses a document start)
    for k in range(2, order + 1):
        pos = K.window_positions(offsets, n, k)
        if len(pos) == 0:
            for _ in range(k, order + 1):
                starts.append(starts[-1])
                words_parts.append(np.zeros(0, np.int32))
                parent_parts.append(np.zeros(0, np.int64))
                raw_parts.append(np.zeros(0, np.int64))
                cont_parts.append(np.zeros(0, np.int64))
            cont_parts[k - 1] = np.zeros(starts[k] - starts[k - 1], np.int64)
            break
        keys = (ctx[pos - 1].astype(np.uint64) << np.uint64(32)) | ids[pos].astype(np.uint64)
        uniq, first, inverse, cnt = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        base = starts[k]
        # Continuation counts of level k-1: each distinct k-gram adds one to its (k-1)-suffix.
        suffix = ctx[pos[first]] - starts[k - 1]
        cont_parts[k - 1] = np.bincount(suffix, minlength=starts[k] - starts[k - 1]).astype(np.int64)
        new_ctx = np.full(n, -1, dtype=np.int64)
        new_ctx[pos] = base + inverse.reshape(-1)
        ctx = new_ctx
        words_parts.append((uniq & _MASK32).astype(np.int32))
        parent_parts.append((uniq >> np.uint64(32)).astype(np.int64))
        raw_parts.append(cnt.astype(np.int64))
        cont_parts.append(None)
        starts.append(base + len(uniq))
    total = starts[order + 1]
    # KN counts: raw at the top level, continuation counts below.
    kn_parts = [np.zeros(1, np.int64)]
    for k in range(1, order + 1):
        part = raw_parts[k] if k == order else cont_parts[k]
        assert part is not None  # every level below the top was filled by the pass over the next level
        kn_parts.append(part)
    counts64 = np.concatenate(kn_parts)
    if counts64.size and counts64.max() >= 1 << 31:
        raise InputError("an n-gram count exceeds 2**31; train on fewer tokens")
    counts = counts64.astype(np.int32)
    words = np.concatenate(words_parts).astype(np.int32)

    disc = np.zeros((order + 1, 4), dtype=np.float64)
    for k in range(1, order + 1):
        disc[k, 1:] = fixed[k - 1] if fixed is not None else estimate_discounts(kn_parts[k])

    # Children of the context entries (root and levels 1..order-1) in CSR form.
    n_ctx = starts[order]
    child_start = np.empty(n_ctx + 1, dtype=np.int64)
    child_start[0] = 1
    for k in range(1, order):
        lo, hi = starts[k], starts[k + 1]
        child_start[lo:hi] = starts[k + 1] + np.searchsorted(parent_parts[k + 1], np.arange(lo, hi), side="left")
    child_start[n_ctx] = total
    denom = np.zeros(n_ctx, dtype=np.float64)
    gamma = np.zeros(n_ctx, dtype=np.float64)
    for k in range(0, order):
        K.context_stats(child_start, counts, starts[k], starts[k + 1], disc[k + 1], denom, gamma)

    # Unigram level interpolated with the uniform distribution over the predictable ids.
    c1 = counts[1 : 1 + vocab_size].astype(np.float64)
    uniform = 1.0 / (vocab_size - min_id)
    p1 = np.zeros(vocab_size, dtype=np.float64)
    if denom[0] > 0:
        d1 = disc[1][np.minimum(c1, 3).astype(np.int64)]
        p1[min_id:] = gamma[0] * uniform + np.maximum(c1 - d1, 0.0)[min_id:] / denom[0]
    else:
        p1[min_id:] = uniform
    tables = _Tables(p1, words, child_start, counts, denom, gamma, disc)
    sizes = [starts[k + 1] - starts[k] for k in range(1, order + 1)]
    sizes[0] = int(np.count_nonzero(raw_parts[1]))
    return tables, sizes
