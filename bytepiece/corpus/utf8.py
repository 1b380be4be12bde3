"""Bytes to NFC UTF-8, counting (or refusing) invalid UTF-8, as every corpus reader does it.

Invalid sequences become U+FFFD and are counted, the way ``bytes.decode(errors="replace")``
replaces them; with ``errors="strict"`` the first one is an error that names the file and line.
"""

from __future__ import annotations

import codecs
import threading
import unicodedata

from ..errors import InputError

ERRORS = ("replace", "strict")


class _Replacer:
    """A codec error handler that replaces like ``errors="replace"`` and counts the replacements."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exc: UnicodeError):
        if not isinstance(exc, UnicodeDecodeError):
            raise exc
        self.count += 1
        return ("\ufffd", exc.end)


_HANDLER_NAME = "bytepiece.count_replace"
_local = threading.local()  # codec handlers are global; the active counter is per thread


def _dispatch(exc: UnicodeError):
    return _local.replacer(exc)


codecs.register_error(_HANDLER_NAME, _dispatch)


def check_errors(errors: str) -> str:
    if errors not in ERRORS:
        raise InputError(f"errors must be 'replace' or 'strict', got {errors!r}")
    return errors


def decode(raw: bytes, errors: str, where: str, line_base: int = 0) -> tuple[str, int]:
    """(text, number of invalid sequences replaced). ``line_base`` is the number of lines before
    ``raw`` in its file (for the message of a strict failure)."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError as e:
        if errors == "strict":
            line = line_base + raw.count(b"\n", 0, e.start) + 1
            raise InputError(
                f"{where}: invalid UTF-8 at line {line} ({e.reason}, byte {raw[e.start:e.start + 1]!r}); "
                "fix the file, or have it replaced by U+FFFD: errors='replace' (CLI: leave out --strict-utf8)"
            ) from None
    replacer = _Replacer()
    previous = getattr(_local, "replacer", None)
    _local.replacer = replacer
    try:
        text = raw.decode("utf-8", _HANDLER_NAME)
    finally:
        _local.replacer = previous
    return text, replacer.count


def nfc_utf8(text: str, raw: bytes | None = None) -> bytes:
    """NFC UTF-8 of ``text``; reuses ``raw`` (the bytes ``text`` was decoded from) when NFC
    changes nothing and the decoding replaced nothing (U+FFFD occurs nowhere in ``text``)."""
    if raw is not None and "\ufffd" in text:
        raw = None
    if text.isascii():
        return raw if raw is not None else text.encode("ascii")
    normal = unicodedata.normalize("NFC", text)
    if normal == text and raw is not None:
        return raw
    try:
        return normal.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            f"text contains a lone surrogate {normal[e.start]!r}, which has no UTF-8 encoding; "
            "fix the text (e.g. decode its source with errors='replace')"
        ) from None


def plain_utf8(text: str) -> bytes:
    """UTF-8 of ``text`` without normalization (raw mode), with a clear error for lone surrogates."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            f"text contains a lone surrogate {text[e.start]!r}, which has no UTF-8 encoding; "
            "fix the text (e.g. decode its source with errors='replace')"
        ) from None


def safe_cut(data: bytes, start: int) -> int:
    """Largest index ``q > start`` such that ``data[q]`` begins an ASCII character or a CJK
    unified ideograph (lead bytes 0xE4-0xE9): NFC never combines across such a cut. -1 if none."""
    q = len(data) - 1
    while q > start:
        c = data[q]
        if c < 0x80 or 0xE4 <= c <= 0xE9:
            return q
        q -= 1
    return -1


#: text longer than this is decoded and normalized a piece at a time (:func:`utf8_document`)
PIECE_BYTES = 1 << 20


def utf8_document(raw: bytes, errors: str, where: str, line_base: int = 0, *,
                  normalize: bool = True) -> tuple[bytes, int]:
    """(UTF-8 of ``raw`` with invalid sequences replaced, NFC when ``normalize``; how many were
    replaced), as :func:`decode` then :func:`nfc_utf8` give it. A long text goes a piece of
    about :data:`PIECE_BYTES` at a time, cut where NFC cannot join (:func:`safe_cut`): as one
    ``str`` it would take up to 4 bytes per character, twice over (decoded, then normalized),
    which made a 60 MB JSON Lines record cost 900 MB to read."""
    if len(raw) <= PIECE_BYTES:
        text, bad = decode(raw, errors, where, line_base)
        return (nfc_utf8(text, raw) if normalize else plain_utf8(text)), bad
    parts: list[bytes] = []
    replaced = 0
    unchanged = True
    a = 0
    while a < len(raw):
        b = _piece_end(raw, a)
        piece = raw[a:b]
        text, bad = decode(piece, errors, where, line_base)
        out = nfc_utf8(text, piece) if normalize else (piece if not bad else plain_utf8(text))
        unchanged = unchanged and out is piece
        parts.append(out)
        replaced += bad
        line_base += piece.count(b"\n")
        a = b
    return (raw if unchanged else b"".join(parts)), replaced


def _piece_end(raw: bytes, a: int) -> int:
    """End of the piece from ``a``: about :data:`PIECE_BYTES` on, before a byte where NFC cannot
    join (and which no UTF-8 sequence continues into), else the end of ``raw``."""
    if len(raw) - a <= PIECE_BYTES:
        return len(raw)
    q = safe_cut(raw[a + PIECE_BYTES // 2 : a + PIECE_BYTES], 0)
    return len(raw) if q < 0 else a + PIECE_BYTES // 2 + q
