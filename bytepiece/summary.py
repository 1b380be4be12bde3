"""What a model holds, as data (``Model.summary()``, shown by ``bytepiece inspect``), and how a
piece is shown to a person.

A piece is bytes, and many pieces are not text on their own (a space, a newline, half of a
UTF-8 character). :func:`display_piece` gives every piece one visible, unambiguous spelling,
the one ``bytepiece encode --format pieces`` and ``bytepiece inspect`` print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .vocab import FIRST_PIECE_ID

#: what stands for a character that would be invisible or ambiguous in a list of pieces
_VISIBLE = {" ": "▁", "▁": "\\u2581", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def display_piece(piece: bytes) -> str:
    """``piece`` as text with nothing hidden and nothing ambiguous: a space is ``▁`` (and a real
    ``▁`` is ``\\u2581``), newlines and tabs are ``\\n``, ``\\t``, a backslash is doubled, a byte
    that is not part of a valid UTF-8 character (or an ASCII control character) is ``\\xNN``,
    escaped once, and any other invisible character is ``\\uXXXX``. Different pieces always look
    different."""
    out = []
    for ch in piece.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, carried through by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x80 and not ch.isprintable():
            out.append(f"\\x{code:02x}")
        elif ch.isspace() or not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class LengthRow:
    """Pieces of one byte length, and their share of all counts."""

    length: int
    pieces: int
    count_share: float


@dataclass(frozen=True)
class TopPiece:
    id: int
    piece: bytes
    count: int
    probability: float


@dataclass(frozen=True)
class ModelSummary:
    """Sizes, piece lengths and the most frequent pieces of a model."""

    vocab_size: int  # reserved ids + pieces (the ids segmentation produces)
    pieces: int
    special_tokens: tuple[str, ...]
    total_count: int
    longest_piece: int
    mean_piece_length: float
    utf8_pieces: int  # pieces that are valid UTF-8 on their own
    lengths: list[LengthRow]
    top: list[TopPiece]
    metadata: dict[str, Any] = field(default_factory=dict)  # the scalar entries of the model's metadata

    @property
    def ids(self) -> int:
        """Every id the model defines, special tokens included (``len(model)``)."""
        return self.vocab_size + len(self.special_tokens)


class _Summarized(Protocol):
    """What a summary reads from a model."""

    pieces: list[bytes]
    counts: npt.NDArray[np.int64]
    metadata: dict[str, Any]
    special_tokens: tuple[str, ...]

    @property
    def vocab_size(self) -> int: ...


def summarize(model: _Summarized, *, top: int = 20) -> ModelSummary:
    lengths = np.fromiter((len(p) for p in model.pieces), dtype=np.int64, count=len(model.pieces))
    counts = model.counts
    total = int(counts.sum())
    by_length = np.bincount(lengths)
    share = np.bincount(lengths, weights=counts.astype(np.float64)) / total
    rows = [LengthRow(int(n), int(by_length[n]), float(share[n])) for n in np.flatnonzero(by_length)]
    order = np.argsort(-counts, kind="stable")[: max(top, 0)]
    frequent = [TopPiece(int(i) + FIRST_PIECE_ID, model.pieces[i], int(counts[i]), float(counts[i]) / total)
                for i in order]
    utf8 = sum(1 for p in model.pieces if _is_utf8(p))
    scalars = {k: v for k, v in sorted(model.metadata.items()) if not isinstance(v, (dict, list))}
    return ModelSummary(model.vocab_size, len(model.pieces), model.special_tokens, total, int(lengths.max()),
                        float(lengths.mean()), utf8, rows, frequent, scalars)


def _is_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
