"""How bytepiece pieces become the string tokens of sentencepiece and HF vocabularies.

Two styles, shared by both exporters:

``byte_fallback`` (readable vocabulary, the layout of sentencepiece byte-fallback models)
    id 0-2     ``<pad>`` ``<bos>`` ``<eos>`` (control tokens; bytepiece ids 0, 1, 2)
    id 3+b     single byte b: ASCII bytes 0x01-0x7F are ordinary one-character pieces (they take
               part in the Viterbi search with their own scores); 0x00 (sentencepiece forbids NUL
               in pieces) and 0x80-0xFF are ``<0xNN>`` byte pieces, which sentencepiece/HF emit
               for a character that no piece covers
    multi-byte valid UTF-8 pieces keep their id and text
    multi-byte pieces that are not valid UTF-8 (a piece that starts or ends inside a character;
               about 1% of published models) or contain NUL cannot be string tokens: they keep their id as an
               unused placeholder ``<bytes:HEX>`` that the tokenizer never produces
    id V       ``<unk>`` (required by both libraries; never produced because of byte fallback)
    id V+1..   ``<0xNN>`` for ASCII bytes 0x01-0x7F (sentencepiece wants all 256 byte pieces;
               never produced, these characters always have a piece)

``byte_level`` (exact: every piece, valid UTF-8 or not, is a token)
    Text is mapped byte by byte to characters before segmentation (a character per byte), so
    the library searches over bytes exactly as bytepiece does; token strings are the mapped
    pieces. HF does this with its standard ``ByteLevel`` pre-tokenizer and decoder (the GPT-2
    byte-to-character table); sentencepiece with a precompiled normalization map (bytes
    0x80-0xFF to characters) and the inverse denormalization map. ids equal bytepiece ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import InputError
from ..model import FIRST_PIECE_ID, SPECIAL_TOKENS
from ._proto import BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED

Style = Literal["byte_fallback", "byte_level"]
STYLES = ("byte_fallback", "byte_level")
UNK = "<unk>"
PLACEHOLDER_PREFIX = "<bytes:"


@dataclass
class Entry:
    token: str
    score: float
    type: int
    count: int | None = None


def byte_token(b: int) -> str:
    return f"<0x{b:02X}>"


def placeholder(piece: bytes) -> str:
    return f"{PLACEHOLDER_PREFIX}{piece.hex().upper()}>"


def parse_placeholder(token: str) -> bytes | None:
    if token.startswith(PLACEHOLDER_PREFIX) and token.endswith(">"):
        try:
            return bytes.fromhex(token[len(PLACEHOLDER_PREFIX) : -1])
        except ValueError:
            return None
    return None


def check_style(style: str) -> None:
    if style not in STYLES:
        raise InputError(f"style must be one of {', '.join(STYLES)}, got {style!r}")


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte-to-character table that HF's ``ByteLevel`` components use: printable
    Latin-1 bytes map to themselves, the others to U+0100 onwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


def _unique(name: str, taken: set[str]) -> str:
    """``name`` unless a piece already spells it; then a variant no piece spells."""
    candidate, k = name, 0
    while candidate in taken:
        k += 1
        candidate = f"{name[:-1]}|{k}>" if name.endswith(">") else f"{name}|{k}"
    return candidate


def special_names(taken: set[str]) -> list[str]:
    return [_unique(name, taken) for name in SPECIAL_TOKENS]


def fallback_entries(tokenizer, *, with_counts: bool = False) -> tuple[list[Entry], list[Entry]]:
    """(entries for ids 0..V-1, extra entries after them), ``byte_fallback`` style."""
    pieces = tokenizer.model.pieces
    counts = tokenizer.model.counts
    scores = tokenizer.scores
    texts: list[str | None] = []
    for p in pieces:
        if (len(p) == 1 and p[0] >= 0x80) or 0 in p:
            texts.append(None)  # byte piece (sentencepiece rejects NUL in pieces)
            continue
        try:
            texts.append(p.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
    taken = {t for t in texts if t is not None}
    names = special_names(taken)
    entries = [Entry(name, 0.0, CONTROL) for name in names]
    for i, (p, text) in enumerate(zip(pieces, texts)):
        score = float(scores[i + FIRST_PIECE_ID])
        count = int(counts[i]) if with_counts else None
        if text is not None:
            entries.append(Entry(text, score, NORMAL, count))
        elif len(p) == 1:
            entries.append(Entry(byte_token(p[0]), score, BYTE, count))
        else:
            entries.append(Entry(placeholder(p), score, UNUSED, count))
    all_names = {e.token for e in entries}
    extras = [Entry(_unique(UNK, all_names), 0.0, UNKNOWN)]
    have_bytes = {e.token for e in entries if e.type == BYTE}
    extras += [Entry(byte_token(b), 0.0, BYTE) for b in range(256) if byte_token(b) not in have_bytes]
    return entries, extras


def byte_level_tokens(pieces: list[bytes], table: dict[int, str]) -> list[str]:
    return ["".join(table[b] for b in p) for p in pieces]
