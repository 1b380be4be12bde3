"""Prefix queries over a tokenizer's vocabulary, and the same vocabulary as flat arrays.

The pieces sorted lexicographically make "tokens starting with P" one contiguous range, found by
two binary searches (O(log V), independent of how many tokens match); "tokens that are a proper
prefix of P" are at most ``len(P) - 1`` hash lookups. Both work for any vocabulary size and any
tokenizer that can list its pieces. :func:`sorted_vocab` gives the same order as the arrays the
kernels read (:class:`bytepiece.kernels.byterange.SortedVocab`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import InputError

if TYPE_CHECKING:  # the kernels (numba) load on first use, not with the token strategies
    from ..kernels.byterange import SortedVocab

__all__ = ["VocabIndex", "sorted_vocab"]


class PieceSource(Protocol):
    """What :meth:`VocabIndex.from_tokenizer` needs: the pieces and the number of ids. A
    tokenizer whose special tokens may follow its pieces also says where the pieces start
    (``first_piece_id``, as a bytepiece Tokenizer does); without it they are the last ids."""

    @property
    def vocab_size(self) -> int: ...

    def pieces(self) -> list[bytes]: ...


class VocabIndex:
    """Prefix queries over a vocabulary: ``pieces[i]`` is the byte string of id ``first_id + i``.

    Build it from a :class:`~bytepiece.Tokenizer` (``VocabIndex.from_tokenizer``) or from any
    list of token byte strings (for other tokenizers: ``VocabIndex(pieces, first_id=...)``;
    empty pieces, e.g. special tokens, are never allowed by a prefix constraint).
    """

    def __init__(self, pieces: Sequence[bytes], *, first_id: int = 0, vocab_size: int | None = None) -> None:
        if first_id < 0:
            raise InputError(f"first_id must be >= 0, got {first_id}")
        pieces = [bytes(p) for p in pieces]
        self.first_id = first_id
        self.vocab_size = vocab_size if vocab_size is not None else first_id + len(pieces)
        if self.vocab_size < first_id + len(pieces):
            raise InputError(f"vocab_size {self.vocab_size} is smaller than first_id + len(pieces)")
        self._by_id: list[bytes] = [b""] * first_id + pieces + [b""] * (self.vocab_size - first_id - len(pieces))
        order = sorted((i for i in range(len(pieces)) if pieces[i]), key=pieces.__getitem__)
        self._sorted: list[bytes] = [pieces[i] for i in order]
        self._sorted_ids = np.array(order, dtype=np.int64) + first_id
        self._to_id: dict[bytes, int] = {}
        for i in order:  # on duplicate pieces the lowest id wins
            self._to_id.setdefault(pieces[i], i + first_id)
        self.max_piece_length = max((len(p) for p in pieces), default=0)
        self._pad = b"\xff" * (self.max_piece_length + 1)

    @classmethod
    def from_tokenizer(cls, tokenizer: PieceSource) -> VocabIndex:
        """Index of a bytepiece :class:`~bytepiece.Tokenizer` (ids 0-2 are reserved, the pieces
        follow, then any added special tokens)."""
        pieces = tokenizer.pieces()
        first = getattr(tokenizer, "first_piece_id", tokenizer.vocab_size - len(pieces))
        return cls(pieces, first_id=first, vocab_size=tokenizer.vocab_size)

    def piece(self, token_id: int) -> bytes:
        """Bytes of ``token_id`` (empty for special tokens)."""
        return self._by_id[token_id]

    def extension_range(self, prefix: bytes) -> tuple[int, int]:
        """``(lo, hi)``: the tokens whose bytes start with ``prefix`` are ``sorted_ids[lo:hi]``."""
        lo = bisect.bisect_left(self._sorted, prefix)
        hi = bisect.bisect_right(self._sorted, prefix + self._pad, lo)
        return lo, hi

    @property
    def sorted_ids(self) -> npt.NDArray[np.int64]:
        """Token ids in lexicographic order of their bytes (read-only view)."""
        view = self._sorted_ids.view()
        view.flags.writeable = False
        return view

    def extensions(self, prefix: bytes) -> npt.NDArray[np.int64]:
        """Ids of the tokens whose bytes start with ``prefix`` (lexicographic order)."""
        lo, hi = self.extension_range(prefix)
        return self._sorted_ids[lo:hi]

    def id_of(self, piece: bytes) -> int:
        """Id of the token whose bytes are ``piece``, or -1."""
        return self._to_id.get(piece, -1)

    def has_longer(self, prefix: bytes) -> bool:
        """Whether some token's bytes start with ``prefix`` and go on beyond it: the cut after
        ``prefix`` could fall inside that token."""
        lo, hi = self.extension_range(prefix)
        return hi - lo > 1 or (hi - lo == 1 and len(self._sorted[lo]) > len(prefix))

    def sorted_pieces(self) -> list[bytes]:
        """The non-empty pieces in lexicographic order (``sorted_ids`` gives their ids)."""
        return list(self._sorted)

    def proper_prefixes(self, prefix: bytes) -> list[int]:
        """Ids of the tokens that are a proper (shorter, non-empty) prefix of ``prefix``, shortest first."""
        to_id = self._to_id
        top = min(len(prefix), self.max_piece_length + 1)
        return [to_id[prefix[:j]] for j in range(1, top) if prefix[:j] in to_id]

    def allowed(self, prefix: bytes) -> npt.NDArray[np.int64]:
        """Every id consistent with a pending ``prefix``: extensions, then proper prefixes."""
        ext = self.extensions(prefix)
        short = self.proper_prefixes(prefix)
        if not short:
            return ext
        return np.concatenate([ext, np.array(short, dtype=np.int64)])

    def allowed_mask(self, prefix: bytes, out: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
        """Boolean mask over the vocabulary of the ids :meth:`allowed` returns."""
        if out is None:
            out = np.zeros(self.vocab_size, dtype=np.bool_)
        else:
            out[:] = False
        out[self.allowed(prefix)] = True
        return out

    def advance(self, prefix: bytes, token_id: int) -> bytes | None:
        """The prefix still pending after emitting ``token_id``, or None if it is not allowed."""
        piece = self._by_id[token_id]
        if not piece:
            return None if prefix else b""
        if piece.startswith(prefix):
            return b""
        if prefix.startswith(piece):
            return prefix[len(piece):]
        return None



def sorted_vocab(index: VocabIndex) -> SortedVocab:
    """The pieces in byte order as flat arrays: "tokens starting with these bytes" becomes a rank range."""
    from ..kernels.byterange import SortedVocab

    pieces = index.sorted_pieces()
    if len(set(pieces)) != len(pieces):
        raise InputError("the vocabulary has two ids with the same bytes; the byte-level model needs unique pieces")
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    so = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=so[1:])
    sb = np.frombuffer(b"".join(pieces), dtype=np.uint8).copy()
    rank_id = np.ascontiguousarray(index.sorted_ids, dtype=np.int32)
    id_rank = np.full(index.vocab_size, -1, dtype=np.int32)
    id_rank[rank_id] = np.arange(len(pieces), dtype=np.int32)
    first_lo = np.searchsorted(sb[so[:-1]], np.arange(257), side="left").astype(np.int64)
    return SortedVocab(sb, so, rank_id, id_rank, first_lo, int(index.max_piece_length))
