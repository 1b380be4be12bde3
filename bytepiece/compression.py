"""Compression of text by a tokenizer: UTF-8 bytes and characters per token.

The one place bytes/token is computed: ``bytepiece train --valid``, ``bytepiece eval`` (both
subcommands, for bytepiece and foreign tokenizers) and the benchmarks build a
:class:`Compression` from their counts and read the ratios from it. A sum with no tokens has
ratios of 0.0, not NaN, so reports stay valid JSON; but the functions that measure a text refuse
an empty one (``InputError``), since 0.0 bytes per token would read as a result.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class Compression:
    bytes: int = 0
    chars: int = 0
    tokens: int = 0

    @classmethod
    def of_text(cls, text: str, tokens: int) -> Compression:
        """``text`` (UTF-8 bytes and characters as given) in ``tokens`` tokens."""
        return cls(len(text.encode("utf-8", "surrogatepass")), len(text), tokens)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0

    @property
    def chars_per_token(self) -> float:
        return self.chars / self.tokens if self.tokens else 0.0

    def __add__(self, other: Compression) -> Compression:
        return Compression(self.bytes + other.bytes, self.chars + other.chars, self.tokens + other.tokens)

    def as_dict(self) -> dict[str, float]:
        """The counts and both ratios (the shape of every compression entry in eval's JSON)."""
        return {"tokens": self.tokens, "bytes": self.bytes, "chars": self.chars,
                "bytes_per_token": self.bytes_per_token, "chars_per_token": self.chars_per_token}


def _tokenizer(model: Any):
    from .tokenizer import Tokenizer

    return Tokenizer.of(model)


def text_compression(model: Any, texts: Iterable[str]) -> Compression:
    """Compression of ``texts`` (each encoded as one document) by ``model`` (a Tokenizer or
    anything ``Tokenizer`` loads). Bytes and characters are those of the texts as given, before
    the tokenizer normalizes them, as ``bytepiece eval compression`` counts them for every kind
    of tokenizer: one denominator, however a tokenizer normalizes."""
    total = _measure(_tokenizer(model), texts)
    if not total.bytes:
        raise InputError("the texts hold no text (every one is empty); give at least one non-empty text")
    return total


def check_text_file(path: str | os.PathLike, label: str | None = None) -> None:
    """Read ``path`` as :func:`file_compression` will, raising its ``InputError`` now (missing,
    binary, truncated, or holding no text; ``label`` names it in the last message): a command
    can then refuse it before hours of work whose results would be written first."""
    from .corpus import holds_text, no_text_error

    if not any(holds_text(text) for text in _documents(path)):
        raise no_text_error(label or os.fspath(path))


def _documents(path: str | os.PathLike) -> Iterator[str]:
    """The documents of ``path``, a text file's lines each with its newline (running text)."""
    from .corpus import file_documents

    for data, source in file_documents(path):
        yield data.decode("utf-8") + ("\n" if source.format == "text" else "")


def _measure(tok: Any, texts: Iterable[str]) -> Compression:
    total = Compression(0, 0, 0)
    batch: list[str] = []

    def flush() -> Compression:
        ids, _ = tok.encode_batch(batch, return_flat=True)
        return sum((Compression.of_text(t, 0) for t in batch), Compression(0, 0, len(ids)))

    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= 1 << 22:
            total = total + flush()
            batch, size = [], 0
    if batch:
        total = total + flush()
    return total


def file_compression(model: Any, path: str | os.PathLike) -> Compression:
    """Compression of a held-out file's documents, read as the corpus reader reads every input
    (gzip or zstd decompressed, binary or truncated data refused, JSON Lines and Parquet by their
    names): a text file's lines each with its newline, as the model sees them in running text."""
    tok = _tokenizer(model)
    total = _measure(tok, _documents(path))
    if not total.bytes:
        from .corpus import no_text_error

        raise no_text_error(os.fspath(path))
    return total
