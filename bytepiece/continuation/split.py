"""The stable prefix of a prompt's encoding: the tokens no continuation of the prompt can change.

Why it matters: the exact byte-level distribution (:mod:`bytepiece.continuation`) conditions on
these tokens and sums over token sequences for the remaining bytes only, so the shorter that
remainder, the less work; and a token that can still change must not be conditioned on.

Rule: text is segmented chunk by chunk (a chunk ends after a run of newlines), so every chunk
but the prompt's last one is final; the last one stays open (even one ending in a newline: the
next byte may be another newline). Inside it, Viterbi's back-pointer at a byte position depends
only on the bytes before that position. A continuation either starts a token exactly at the end
of the prompt, or extends a token that starts at some q from which the rest of the prompt is a
proper prefix of a longer piece; the tokens before that token are the back-pointer path from q.
Boundaries shared by the paths from every such q and from the end are boundaries of every
continuation's encoding, and the stable prefix ends at the last of them. (Conservative: chunk
rules could only make more of the prompt stable.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .healing import VocabIndex
from ..kernels.byterange import SortedVocab
from ..kernels.stable import stable_point

__all__ = ["StableSplit", "stable_points", "stable_split"]

_CHUNK = re.compile(rb"[^\n]*\n+|[^\n]+")


@dataclass(frozen=True)
class StableSplit:
    """A prompt as a token prefix no continuation can change, plus the bytes after it."""

    ids: list[int]
    tail: bytes


def stable_points(tokenizer: Any, chunks: Sequence[bytes], *, index: VocabIndex | None = None,
                  vocab: SortedVocab | None = None, num_threads: int | None = 1) -> list[tuple[int, list[int]]]:
    """For each chunk (the last, open chunk of a prompt): ``(p, ids)``: ``ids`` are the tokens of
    ``chunk[:p]``, the first tokens of the chunk's encoding whatever follows it (module doc).

    One Viterbi pass per chunk with the tokenizer's scores finds every back-pointer path; if that
    pass does not reproduce the tokenizer's own encoding (a tokenizer with other tie rules), the
    paths come from encoding each prefix ``chunk[:q]`` instead.
    """
    from .byte_lm import sorted_vocab

    index = index or VocabIndex.from_tokenizer(tokenizer)
    vocab = vocab or sorted_vocab(index)
    scores = np.ascontiguousarray(getattr(tokenizer, "scores", np.zeros(0)), dtype=np.float64)
    owns = tokenizer.encode_batch(list(chunks), num_threads=num_threads) if chunks else []
    out: list[tuple[int, list[int]]] = []
    for c, own in zip(chunks, owns):
        lengths = [len(tokenizer.id_to_piece(t)) for t in own]
        ends = np.zeros(len(c) + 1, dtype=np.bool_)
        ends[np.cumsum([0] + lengths)] = True
        p = -1
        if len(scores) == index.vocab_size and sum(lengths) == len(c):
            p = int(stable_point(vocab.sb, vocab.so, vocab.rank_id, vocab.max_len, scores,
                                 np.frombuffer(c, dtype=np.uint8), ends))
        if p < 0:
            p = _by_encoding(tokenizer, index, c, own)
        ntok = int(np.searchsorted(np.cumsum([0] + lengths), p))
        out.append((p, own[:ntok]))
    return out


def _by_encoding(tokenizer: Any, index: VocabIndex, chunk: bytes, own: list[int]) -> int:
    """The same rule with each path taken from ``encode(chunk[:q])`` (slower, tokenizer-agnostic)."""
    n = len(chunk)
    qs = [q for q in range(max(0, n - index.max_piece_length + 1), n) if index.has_longer(chunk[q:])]
    common = None
    for q, ids in zip([n, *qs], [own, *tokenizer.encode_batch([chunk[:q] for q in qs], num_threads=1)]):
        if tokenizer.decode_bytes(ids) != chunk[:q]:  # normalization changed the prefix: trust nothing
            return 0
        ends = set(np.cumsum([0] + [len(tokenizer.id_to_piece(t)) for t in ids]).tolist())
        common = ends if common is None else common & ends
    return max(common) if common else 0


def stable_split(tokenizer: Any, prompt: str | bytes, *, index: VocabIndex | None = None,
                 vocab: SortedVocab | None = None) -> StableSplit:
    """The stable prefix of ``prompt``'s encoding and the (normalized) bytes after it."""
    data = tokenizer.normalize(prompt)
    parts = _CHUNK.findall(data)
    if not parts:
        return StableSplit([], b"")
    last = parts[-1]
    head = data[: len(data) - len(last)]
    ((p, ids),) = stable_points(tokenizer, [last], index=index, vocab=vocab)
    return StableSplit((tokenizer.encode(head) if head else []) + list(ids), last[p:])
