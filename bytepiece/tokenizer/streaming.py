"""Incremental decoding for generation loops (HF tokenizers' ``DecodeStream``).

A token may end inside a UTF-8 character (byte-level pieces do), so decoding each new id on its
own would print U+FFFD halves. ``DecodeStream`` keeps the bytes of an unfinished character
until the ids that complete it arrive, using Python's incremental UTF-8 decoder, whose output
over any split of a byte string is the same as decoding it in one go: the concatenation of
everything ``step`` and ``flush`` return is exactly ``Tokenizer.decode(ids, errors)``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from typing import Protocol

from ..errors import InputError


class _Decoder(Protocol):
    def decode_bytes(self, ids: Iterable[int]) -> bytes: ...


class DecodeStream:
    """Decode ids one at a time: ``step(id)`` returns the text that became complete with that
    id (``""`` while a character is still split), ``flush()`` the rest at the end."""

    def __init__(self, vocabulary: _Decoder, *, errors: str = "replace") -> None:
        """``vocabulary``: anything with ``decode_bytes(ids)`` (a ``Tokenizer`` or its core)."""
        try:
            codecs.lookup_error(errors)
        except LookupError:
            raise InputError(f"errors must be a codec error handler such as 'replace' or 'strict', got {errors!r}") from None
        self.vocabulary = vocabulary
        self.errors = errors
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors)

    def step(self, id: int) -> str:
        """Feed one id; return the newly completed text."""
        return self._decoder.decode(self.vocabulary.decode_bytes([id]))

    def extend(self, ids: Iterable[int]) -> str:
        """Feed several ids at once; same as joining ``step`` over them."""
        return self._decoder.decode(self.vocabulary.decode_bytes(ids))

    def flush(self) -> str:
        """End of the stream: the pending bytes (an incomplete character becomes U+FFFD, or
        raises with ``errors="strict"``); the stream is then empty and can be reused."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text

    @property
    def pending(self) -> bytes:
        """Bytes held back because they do not end a complete character yet."""
        return self._decoder.getstate()[0]
