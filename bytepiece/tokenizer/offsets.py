"""Token offsets into the input text, through NFC normalization.

NFC only ever rewrites a run of characters that starts at a *stable starter* (a character with
canonical combining class 0 that cannot compose with what precedes it) and ends before the next
one, so the text is cut into such runs ("segments") and each is normalized on its own: the
normalized text is the concatenation, and every normalized character maps back to the whole
input segment it came from. Almost every segment is a single character (identity mapping); a
decomposed "e" + U+0301 is one segment of two input characters that becomes one character.

A token's span runs from the input segment of its first byte to the input segment of its last
byte. Tokens that split a character (or a segment) therefore share it: the spans of consecutive
tokens either meet or overlap on exactly such a character, never leave a gap.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..normalize import NFC, to_utf8
from .core import Segmenter, Text
from .documents import DocumentEncoder, EncodeOptions
from .specials import AllowedSpecial

Span = tuple[int, int]
_HANGUL_V = range(0x1161, 0x1176)
_HANGUL_T = range(0x11A8, 0x11C3)
_HANGUL_L = range(0x1100, 0x1113)
_HANGUL_S = range(0xAC00, 0xAC00 + 11172)


@functools.lru_cache(maxsize=1)
def composition_sets() -> tuple[frozenset[int], frozenset[int]]:
    """(first, second): code points that are the first / second half of a canonical composition
    NFC performs (from this Python's Unicode database; decompositions all lie below U+30000)."""
    first: set[int] = set()
    second: set[int] = set()
    decomposition = unicodedata.decomposition
    for cp in range(0x30000):
        d = decomposition(chr(cp))
        if d and d[0] != "<":
            parts = d.split()
            if len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
                first.add(int(parts[0], 16))
                second.add(int(parts[1], 16))
    return frozenset(first), frozenset(second)


@functools.lru_cache(maxsize=4096)
def is_stable_starter(ch: str) -> bool:
    """Whether NFC never combines ``ch`` (or the start of its decomposition) with anything before it."""
    _, second = composition_sets()
    head = unicodedata.normalize("NFD", ch)[0]
    for c in (ch, head):
        cp = ord(c)
        if unicodedata.combining(c) or cp in second or cp in _HANGUL_V or cp in _HANGUL_T:
            return False
    return True


@functools.lru_cache(maxsize=4096)
def may_compose_with_next(ch: str) -> bool:
    """Whether NFC could change (the normalized form of) ``ch`` when something is appended after
    it: it composes with a following character, or it is or normalizes to something a following
    combining mark can be reordered with."""
    first, _ = composition_sets()
    normalized = unicodedata.normalize("NFC", ch)
    if len(normalized) != 1:
        return True
    cp = ord(normalized)
    if cp in _HANGUL_L or (cp in _HANGUL_S and (cp - 0xAC00) % 28 == 0):
        return True
    # A precomposed character ending in a combining mark (é = e + U+0301) is re-ordered and
    # re-composed when a mark of lower combining class follows (é + U+0323 becomes ệ-like forms).
    if any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", normalized)):
        return True
    return cp in first or not is_stable_starter(normalized)


def segment_starts(text: str) -> list[int]:
    """Indices where a new NFC segment starts (always includes 0 for non-empty text)."""
    return [i for i, ch in enumerate(text) if i == 0 or ch.isascii() or is_stable_starter(ch)]


class Alignment:
    """Normalized text and, for each of its characters, the input span it comes from."""

    def __init__(self, text: str, normalization: str) -> None:
        self.text = text
        if normalization != NFC or text.isascii() or unicodedata.is_normalized("NFC", text):
            self.normalized = text
            idx = np.arange(len(text), dtype=np.int64)
            self.start, self.end = idx, idx + 1
            return
        starts = segment_starts(text) + [len(text)]
        parts, span_start, span_end = [], [], []
        for a, b in zip(starts[:-1], starts[1:]):
            piece = unicodedata.normalize("NFC", text[a:b])
            parts.append(piece)
            span_start.extend([a] * len(piece))
            span_end.extend([b] * len(piece))
        self.normalized = "".join(parts)
        self.start = np.array(span_start, dtype=np.int64)
        self.end = np.array(span_end, dtype=np.int64)


def utf8_lengths(text: str) -> npt.NDArray[np.int64]:
    """UTF-8 byte length of each character of ``text``."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)


def byte_to_char(data: bytes) -> npt.NDArray[np.int64]:
    """For each byte of UTF-8 ``data``, the index of the character it belongs to."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return np.cumsum((arr & 0xC0) != 0x80) - 1


def token_lengths(core: Segmenter, ids: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Bytes each token covers in the normalized text (a special token: its matched text)."""
    table = np.zeros(core.vocab_size, np.int64)
    table[:core.first_special_id] = core.piece_lengths
    for token, token_id in core.specials.ids.items():
        table[token_id] = len(core.specials.patterns[token])
    return table[np.asarray(ids, dtype=np.int64)]


def encode_with_offsets(core: Segmenter, text: Text, *, unit: Literal["char", "byte"] = "char",
                        allowed_special: AllowedSpecial = ()) -> tuple[list[int], list[Span]]:
    """``(ids, offsets)`` with ``ids == encode(text, allowed_special=...)`` and each offset the
    ``(start, end)`` of the token in ``text``: character indices, or with ``unit="byte"`` indices
    into the UTF-8 of ``text`` (for ``bytes`` input, into the bytes themselves).

    A token covering part of a character (or of a character NFC composed from several) spans the
    whole of it; joining ``text[max(start, previous_end):end]`` over the tokens gives back the
    text, and so does the plain join whenever no token splits a character.
    """
    if unit not in ("char", "byte"):
        raise InputError(f"unit must be 'char' or 'byte', got {unit!r}")
    if not isinstance(text, (str, bytes, bytearray, memoryview)):
        raise InputError(f"expected str or bytes, got {type(text).__name__}")
    align = None
    if isinstance(text, str):
        align = Alignment(text, core.normalization)
        data = to_utf8(align.normalized, "none")
    else:
        raw = bytes(text)
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            if unit == "char":
                raise InputError("the bytes are not valid UTF-8, so they have no character offsets; use unit='byte'") from None
            data = raw  # not valid UTF-8: encoded as given (no normalization applies): bytes map to themselves
        else:
            align = Alignment(decoded, core.normalization)
            data = align.normalized.encode("utf-8")
    options = EncodeOptions.make(core, allowed_special=allowed_special)
    flat, _ = DocumentEncoder(core, options).encode(data, np.array([0, len(data)], np.int64))
    ends = np.cumsum(token_lengths(core, flat))
    starts = ends - token_lengths(core, flat)
    if align is not None and len(flat):
        char_of = byte_to_char(data)
        starts = align.start[char_of[starts]]
        ends = align.end[char_of[ends - 1]]
        if unit == "byte":
            cum = np.zeros(len(align.text) + 1, np.int64)
            np.cumsum(utf8_lengths(align.text), out=cum[1:])
            starts, ends = cum[starts], cum[ends]
    return flat.tolist(), list(zip(starts.tolist(), ends.tolist()))
