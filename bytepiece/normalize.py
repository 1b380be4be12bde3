"""Text to bytes the way the original BytePiece sees it: NFC, UTF-8, chunks split after newlines.

Encoding does the chunking inside the kernel (a chunk ends after a run of ``\\n`` bytes), so
this module only has to produce NFC UTF-8. Training caps chunk and newline-run lengths, which
the regexes below implement exactly as the original does.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from collections.abc import Iterator

from .errors import InputError

NFC = "nfc"
RAW = "none"
NORMALIZATIONS = (NFC, RAW)

TRAINING_MAX_CHUNK_CHARS = 10000
TRAINING_MAX_NEWLINES = 100


def to_utf8(text: str | bytes, normalization: str = NFC) -> bytes:
    """UTF-8 bytes of ``text`` after NFC (unless ``normalization == "none"``).

    ``bytes`` input that is not valid UTF-8 cannot be normalized; a byte-level model can still
    encode it, so it passes through unchanged.
    """
    if isinstance(text, str):
        if normalization == NFC and not text.isascii():
            text = unicodedata.normalize("NFC", text)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(
                f"text contains a lone surrogate {text[e.start]!r} at index {e.start}, which has no UTF-8 encoding; "
                "fix the text (e.g. decode the source with errors='replace')"
            ) from None
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        if normalization == NFC and not data.isascii():
            try:
                return unicodedata.normalize("NFC", data.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                return data
        return data
    raise InputError(f"expected str or bytes to encode, got {type(text).__name__}")


@lru_cache(maxsize=8)
def _training_regex(max_chars: int, isolate_digits: bool) -> re.Pattern[str]:
    n, k = max_chars, TRAINING_MAX_NEWLINES
    if isolate_digits:
        return re.compile(r"\d|[^\n\d]{0,%d}\n{1,%d}|[^\n\d]{1,%d}" % (n, k, n))
    return re.compile(r".{0,%d}\n{1,%d}|.{1,%d}" % (n, k, n))


def training_chunks(
    text: str, *, isolate_digits: bool = False, max_chars: int = TRAINING_MAX_CHUNK_CHARS
) -> Iterator[bytes]:
    """Chunks of one training text, as UTF-8 bytes (NFC, capped lengths, optional lone digits)."""
    text = unicodedata.normalize("NFC", text)
    for match in _training_regex(max_chars, isolate_digits).finditer(text):
        yield match.group().encode("utf-8", "surrogatepass")
