"""Exact byte-level continuation: what a *token* LM says about the next bytes of a text.

A prompt cut inside a token is tokenized differently from the same bytes inside a longer text,
so asking the LM "what token comes after the prompt's tokens?" answers the wrong question. The
question that does not depend on where the cut falls is about bytes: given that the text starts
with the prompt's bytes, how likely is each next byte? The LM answers it once we say which token
sequences spelling those bytes count (``tokenizations``, :data:`.split.TOKENIZATIONS`):

* ``"all"``: every token sequence, from the prompt's first byte;
* ``"stable"``: the prompt's stable prefix as context, every tokenization of the rest;
* ``"canonical"``: only the tokenizer's own segmentations (:mod:`.canonical`).

What is summed (``all`` and ``stable``; ``canonical`` keeps the canonical sequences only). For the
bytes ``r`` after the context and each byte ``b``::

    M(r b) = sum over token sequences t1..tk after the context whose bytes start with r b while
             t1..t(k-1) end inside r b, of  prod_i P(t_i | context, t_<i)
    P(b | prompt) = M(r b) / sum_b' M(r b')

Every infinite token sequence whose bytes start with ``r`` belongs to exactly one of these terms,
so the 256 values sum to ``M(r)``, the probability that the text goes on with ``r``. Chaining gives
characters, greedy or sampled byte continuations and the log-loss of any text (:class:`.cursor.Cursor`).

How. A forward pass over byte positions: ``F[j, h]`` is the summed probability of the token
sequences that tile the first ``j`` bytes and leave the LM in state ``h``; ``F[j + len(t), h·t] +=
F[j, h] P(t | h)`` for every piece ``t`` that matches the bytes at ``j``. The next-byte masses add,
for each live ``(j, h)``, the probability of the tokens that start with ``r[j:]`` and go on, split
by their next byte (a rank range of the pieces sorted by their bytes). The Kneser-Ney model runs
in compiled kernels (:mod:`.kn`), any other LM with ``next_token_logprobs`` in Python
(:mod:`.generic`); the canonical sum keeps one state per position (:mod:`.canonical`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels.byterange import SortedVocab
from .canonical import CanonicalCursor, CanonicalTables, GenericChains, KNChains
from .cursor import Cursor, Seed
from .generic import Distributions, GenericCursor
from .kn import KNCursor, kn_view
from .split import check_tokenizations, prompt_split
from .vocab import VocabIndex, sorted_vocab

__all__ = ["DEFAULT_MAX_STATES", "DEFAULT_TOKENIZATIONS", "ByteLevelLM", "TokenLM"]

DEFAULT_MAX_STATES = 1 << 16
DEFAULT_TOKENIZATIONS = "stable"


class TokenLM(Protocol):
    """What :class:`ByteLevelLM` needs from a language model over the tokenizer's ids.

    Optional: ``next_token_logprobs_batch(contexts) -> (n, vocab_size)`` (used when present),
    ``next_token_probs_batch(contexts)``, the same as probabilities (preferred: the generic path
    needs probabilities, and an LM may compute them more cheaply than their exp) and
    ``context_size`` (histories that agree on their last ``context_size`` tokens predict the
    same; lets the generic recursion merge them)."""

    vocab_size: int

    def next_token_logprobs(self, context_ids: Sequence[int]) -> npt.NDArray[np.floating]: ...


class ByteLevelLM:
    """A token LM seen as a model of bytes, through a tokenizer (see the module docstring).

    ``lm``: a :class:`bytepiece.continuation.NGramLM` (compiled dynamic program) or any object with
    ``next_token_logprobs(context_ids)`` over the tokenizer's ids (generic recursion; an LM that
    looks at the whole history makes the number of states grow with the number of tilings, and
    ``max_states`` caps it, keeping the most probable states: the result is then approximate and
    the cursor's ``exact`` attribute says so). With the Kneser-Ney model the states stay exact: a
    position that needs more than ``max_states`` raises instead. ``tokenizations``: the default
    distribution of the prompt methods. Tokens without bytes (special tokens) are left out:
    probabilities are conditional on none of them being generated.
    """

    tokenizer: Any
    index: VocabIndex
    vocab: SortedVocab

    def __init__(self, tokenizer: Any, lm: TokenLM, *, tokenizations: str = DEFAULT_TOKENIZATIONS,
                 index: VocabIndex | None = None, max_states: int = DEFAULT_MAX_STATES,
                 share: ByteLevelLM | None = None) -> None:
        from .lm import NGramLM

        if isinstance(max_states, bool) or not isinstance(max_states, int) or max_states < 1:
            raise InputError(f"max_states must be a positive integer, got {max_states!r}")
        if not callable(getattr(lm, "next_token_logprobs", None)):
            raise InputError("lm must have a next_token_logprobs(context_ids) method "
                             "(see bytepiece.continuation.TokenLM)")
        if getattr(lm, "vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
            raise InputError(f"the LM predicts {lm.vocab_size} ids but the tokenizer has {tokenizer.vocab_size}; "
                             "train the LM on this tokenizer's ids")
        if share is not None and share.tokenizer is not tokenizer:
            raise InputError("share must be a ByteLevelLM over the same tokenizer")
        self.tokenizations = check_tokenizations(tokenizations)
        self.tokenizer = tokenizer
        self.index = share.index if share is not None else index or VocabIndex.from_tokenizer(tokenizer)
        self.vocab = share.vocab if share is not None else sorted_vocab(self.index)
        self.max_states = max_states
        self._share = share
        self._tables: CanonicalTables | None = None
        self.lm = lm
        self.kn = kn_view(lm, self.vocab) if isinstance(lm, NGramLM) else None
        self._dists = None if self.kn is not None else Distributions(lm, self.vocab)
        self._masked: Any = None

    def with_lm(self, lm: TokenLM) -> ByteLevelLM:
        """The same byte-level model for another LM over the same tokenizer, sharing what depends
        on the tokenizer only (the vocabulary arrays, the canonical tables)."""
        return ByteLevelLM(self.tokenizer, lm, tokenizations=self.tokenizations, max_states=self.max_states, share=self)

    def canonical_tables(self) -> CanonicalTables:
        """What the canonical distribution needs from the tokenizer (built on first use, shared
        with the model this one was made from by :meth:`with_lm`)."""
        if self._tables is None:
            self._tables = self._share.canonical_tables() if self._share is not None else \
                CanonicalTables(self.tokenizer, self.index, self.vocab)
        return self._tables

    # -- cursors ------------------------------------------------------------------------------------
    def cursor(self, context: Sequence[int] = (), data: bytes = b"", *, constrained: int = 0,
               bias: float | None = None, canonical: bool = False) -> Cursor:
        """A cursor on the bytes ``data`` after the tokens ``context``, summing every tokenization
        of ``data`` (or, with ``canonical``, the tokenizer's own only: ``data`` must then start
        where the tokenizer starts segmenting, a chunk start).

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
        if canonical:
            if constrained:
                raise InputError("a canonical cursor has no constrained prefix (healing is a token strategy)")
            tables, masked = self._canonical_tables()
            chains: KNChains | GenericChains
            if self.kn is not None:
                chains = KNChains(self.kn, masked, tables.keep, ctx)
            else:
                assert self._dists is not None
                chains = GenericChains(self._dists, tables.keep, ctx)
            return CanonicalCursor(tables, chains, data)
        log_bias = math.inf if bias is None else float(bias)
        if self.kn is not None:
            return KNCursor(self.vocab, self.kn, self.max_states, ctx, data, constrained, log_bias)
        assert self._dists is not None
        return GenericCursor(self.index, self.vocab, self._dists, self.max_states, ctx, data, constrained, log_bias)

    def _canonical_tables(self) -> tuple[CanonicalTables, Any]:
        """The canonical tables and, for the Kneser-Ney LM, its view that leaves out the pieces
        the tokenizer never produces (built on first use)."""
        tables = self.canonical_tables()
        if self._masked is None and self.kn is not None:
            self._masked = kn_view(self.lm, self.vocab, keep=tables.keep)
        return tables, self._masked

    def prompt_cursor(self, prompt: str | bytes, *, tokenizations: str | None = None) -> Cursor:
        """A cursor after ``prompt`` for the distribution ``tokenizations`` (default: the one this
        model was made with)."""
        name = check_tokenizations(tokenizations or self.tokenizations)
        ctx, data = prompt_split(self.tokenizer, prompt, name, index=self.index)
        cur = self.cursor(ctx, data, canonical=name == "canonical")
        if isinstance(cur, CanonicalCursor) and cur.tokens() != list(self.tokenizer.encode(data)):
            raise InputError("the tokenizer's encoding is not the Viterbi segmentation of its scores (another tie "
                             "rule or normalization), so its canonical sequences cannot be decided locally; use "
                             "tokenizations='stable' or 'all'")
        return cur

    # -- queries ------------------------------------------------------------------------------------
    def next_byte_probs(self, prompt: str | bytes, *, tokenizations: str | None = None) -> npt.NDArray[np.float64]:
        """P(next byte | prompt) for the 256 byte values."""
        return self.prompt_cursor(prompt, tokenizations=tokenizations).probs()

    def logprob(self, prompt: str | bytes, continuation: str | bytes, *, tokenizations: str | None = None) -> float:
        """Natural-log probability that ``prompt`` goes on with ``continuation`` (bytes as given; a
        str is UTF-8 encoded without normalization), chained byte by byte."""
        data = continuation.encode("utf-8") if isinstance(continuation, str) else bytes(continuation)
        return self.prompt_cursor(prompt, tokenizations=tokenizations).score(data)

    def greedy(self, prompt: str | bytes, max_bytes: int, *, tokenizations: str | None = None) -> bytes:
        """The most probable byte, ``max_bytes`` times."""
        return self.prompt_cursor(prompt, tokenizations=tokenizations).greedy(max_bytes)

    def sample(self, prompt: str | bytes, max_bytes: int, *, temperature: float = 1.0, seed: Seed = None,
               tokenizations: str | None = None) -> bytes:
        """``max_bytes`` bytes drawn one at a time from the byte distribution (``temperature``
        rescales each byte distribution's log-probabilities)."""
        return self.prompt_cursor(prompt, tokenizations=tokenizations).sample(max_bytes, temperature=temperature,
                                                                              seed=seed)

    def next_char_probs(self, prompt: str | bytes, *, top: int = 10,
                        tokenizations: str | None = None) -> list[tuple[bytes, float]]:
        """The ``top`` most probable next characters (UTF-8 sequences, as bytes) with their
        probabilities, most probable first (:meth:`.cursor.Cursor.next_chars`)."""
        if not isinstance(top, int) or top < 1:
            raise InputError(f"top must be a positive integer, got {top!r}")
        return self.prompt_cursor(prompt, tokenizations=tokenizations).next_chars(top)
