"""Where each byte-level distribution starts on a prompt: the token context it conditions on and
the bytes it sums over.

The three distributions (:data:`TOKENIZATIONS`, see docs/evaluation.md for the precise sums):

* ``"all"``: every token sequence whose bytes spell the prompt and go on; the sum starts at the
  prompt's first byte with no context.
* ``"stable"``: the prompt's *stable prefix* (the tokens of its encoding that no continuation can
  change, ``Tokenizer.encode_stable``) is taken as the context, and every tokenization of the rest
  is summed.
* ``"canonical"``: only the token sequences the tokenizer itself produces (its Viterbi
  segmentations, :mod:`.canonical`); the sum starts at the prompt's last chunk, since chunks are
  segmented independently, with the tokens of the chunks before it as the context.

The stable prefix of a bytepiece :class:`~bytepiece.Tokenizer` is its own ``encode_stable``
(which also knows what NFC can still change at the end); for another tokenizer it is found by
encoding prefixes (:func:`stable_by_encoding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .vocab import VocabIndex

__all__ = ["TOKENIZATIONS", "StableSplit", "check_tokenizations", "prompt_split", "stable_by_encoding",
           "stable_split"]

TOKENIZATIONS = ("canonical", "stable", "all")


def check_tokenizations(name: str) -> str:
    if name not in TOKENIZATIONS:
        raise InputError(f"unknown tokenizations {name!r}; choose from {', '.join(TOKENIZATIONS)}")
    return name


@dataclass(frozen=True)
class StableSplit:
    """A prompt as a token prefix no continuation can change, plus the (normalized) bytes after it."""

    ids: list[int]
    tail: bytes


def stable_split(tokenizer: Any, prompt: str | bytes, *, index: VocabIndex | None = None) -> StableSplit:
    """The stable prefix of ``prompt``'s encoding and the normalized bytes after it."""
    data = tokenizer.normalize(prompt)
    own = getattr(tokenizer, "encode_stable", None)
    if not callable(own):
        return stable_by_encoding(tokenizer, data, index=index or VocabIndex.from_tokenizer(tokenizer))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # ends inside a character (or is not UTF-8): the bytes form handles it
        ids, tail = own(data)
        return StableSplit(list(ids), bytes(tail))
    # As text: encode_stable then also holds the last character back when NFC could still
    # compose it with what follows (an ASCII "e" and a combining accent), which its bytes form
    # does not do for ASCII input.
    ids, rest = own(text)
    return StableSplit(list(ids), tokenizer.normalize(rest))


def stable_by_encoding(tokenizer: Any, data: bytes, *, index: VocabIndex) -> StableSplit:
    """The stable prefix of ``data`` (normalized bytes) for a tokenizer without ``encode_stable``.

    A continuation either starts a token at the end of ``data`` or extends a token that starts
    at some q from which the rest of ``data`` is a proper prefix of a longer piece; if every
    prefix ``data[:q]`` is encoded the way the whole text's encoding goes up to q (true of a
    Viterbi tokenizer, whose back-pointers depend only on the bytes before), the token
    boundaries that the encodings of ``data`` and of every such ``data[:q]`` share are
    boundaries of every continuation's encoding. The split is at the last of them. A tokenizer
    that changes the bytes of a prefix (normalization) gets no stable prefix at all.
    """
    own = tokenizer.encode(data)
    n = len(data)
    qs = [q for q in range(max(0, n - index.max_piece_length + 1), n) if index.has_longer(data[q:])]
    common: set[int] | None = None
    for q, ids in zip([n, *qs], [own, *(tokenizer.encode(data[:q]) for q in qs)]):
        if tokenizer.decode_bytes(ids) != data[:q]:
            return StableSplit([], data)
        ends = set(np.cumsum([0] + [len(index.piece(t)) for t in ids]).tolist())
        common = ends if common is None else common & ends
    p = max(common) if common else 0
    lengths = np.cumsum([0] + [len(index.piece(t)) for t in own])
    return StableSplit(list(own[: int(np.searchsorted(lengths, p))]), data[p:])


def last_chunk(data: bytes) -> int:
    """Where the last chunk of ``data`` starts (chunks end after each run of newlines; the
    tokenizer segments each on its own). A prompt ending in newlines keeps them in its last
    chunk: one more newline would extend it."""
    from ..normalize import chunks

    parts = chunks(data)
    return len(data) - len(parts[-1]) if parts else 0


def prompt_split(tokenizer: Any, prompt: str | bytes, tokenizations: str, *,
                 index: VocabIndex | None = None) -> tuple[list[int], bytes]:
    """``(context ids, bytes)``: where the sum of ``tokenizations`` starts on ``prompt``."""
    check_tokenizations(tokenizations)
    if tokenizations == "stable":
        split = stable_split(tokenizer, prompt, index=index)
        return split.ids, split.tail
    data = tokenizer.normalize(prompt)
    if tokenizations == "all":
        return [], data
    start = last_chunk(data)
    return (list(tokenizer.encode(data[:start])) if start else []), data[start:]
