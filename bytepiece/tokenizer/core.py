"""``Segmenter``: the one object that segments bytes with a model.

It owns everything a segmentation needs: the model's arrays (the trie of reversed pieces, the
per-cell scores, the table of first byte pairs), the per-alpha tables of the samplers, the
vocabulary as bytes (pieces and special tokens) and the choice between the plain-Python start
and the numba kernels. Every view of a segmentation (batches of documents, n-best lists, offsets,
stable prefixes, streaming decode, corpus encoding) works through its public methods, and
``Tokenizer`` is a facade over it; nothing here knows about those views.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Union

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels.modes import LINEAR, LOG, VITERBI
from ..model import check_special_tokens
from ..normalize import NORMALIZATIONS, to_utf8
from ..options import NO_SEED
from ..vocab import FIRST_PIECE_ID, SPECIAL_TOKENS, token_dtype
from . import coldstart
from .arrays import EncoderArrays
from .idlists import SHARED_IDS_MIN, shared_ids
from .specials import SpecialTokens

# p ** alpha must stay far from underflow for the linear-domain sampler (it rescales within
# [1e-100, 1e100]); below this log weight the log-domain sampler takes over.
_LINEAR_MIN_LOG_WEIGHT = -200.0
_SAMPLING_TABLES = 16

#: what the tokenizer accepts as text: str, or UTF-8 bytes
Text = Union[str, bytes]


class KernelTables(NamedTuple):
    """What the encode kernels take for one alpha: the trie, the per-cell values and the mode."""

    base_check: npt.NDArray[np.int32]
    pair: npt.NDArray[np.int32]
    piece: npt.NDArray[np.int32]
    values: npt.NDArray[np.float64]  # log p per cell (Viterbi, LOG) or p ** alpha (LINEAR)
    mode: int
    max_len: int
    alpha: float  # read by the log-domain sampler (0 for Viterbi)


class Segmenter:
    """A model's segmentation machinery (see the module docstring).

    ``normalization`` is ``"nfc"`` (the original's) or ``"none"`` (bytes as given);
    ``special_tokens`` take the ids after the pieces.
    """

    def __init__(self, arrays: EncoderArrays, *, normalization: str = "nfc",
                 special_tokens: Iterable[str] = ()) -> None:
        if normalization not in NORMALIZATIONS:
            raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.arrays = arrays
        self.normalization = normalization
        self.base_check = arrays.base_check
        self.pair = arrays.pair
        self.cell_piece = arrays.piece
        self.cell_scores = arrays.cell_scores
        self.scores = arrays.scores
        self.max_piece_length = arrays.max_depth
        #: ids of the reserved tokens and the pieces; special tokens come after
        self.first_special_id = arrays.vocab_size
        self._sampling: OrderedDict[float, KernelTables] = OrderedDict()
        self.specials = SpecialTokens((), self.first_special_id, normalization)
        self.add_special_tokens(special_tokens)

    # -- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: reserved, pieces and special tokens."""
        return self.first_special_id + len(self.specials.tokens)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self.specials.tokens

    @property
    def id_dtype(self) -> np.dtype:
        """The narrowest integer type that holds every id (uint16 up to 65,536 ids)."""
        return token_dtype(self.vocab_size)

    def add_special_tokens(self, tokens: Iterable[str]) -> int:
        """Give each of ``tokens`` an id after the last one (known tokens keep theirs); returns
        how many were new."""
        extended = self.specials.extended(check_special_tokens(tokens))
        added = len(extended.tokens) - len(self.specials.tokens)
        if added:
            self.specials = extended
            self.__dict__.pop("id_bytes", None)
        return added

    def special_token_ids(self, tokens: Iterable[str]) -> dict[str, int]:
        """The id each of ``tokens`` has, or would get from :meth:`add_special_tokens`, without
        adding them (decoding ids that were encoded with added tokens)."""
        chosen = check_special_tokens(tokens)
        ids = self.specials.extended(chosen).ids
        return {t: ids[t] for t in chosen}

    @functools.cached_property
    def pieces(self) -> list[bytes]:
        """The pieces in id order (index i holds id i + 3)."""
        return self.arrays.pieces()

    @functools.cached_property
    def id_bytes(self) -> list[bytes]:
        """The bytes each id decodes to: nothing for ids 0-2, a special token's UTF-8 text."""
        return [b""] * FIRST_PIECE_ID + self.pieces + [t.encode("utf-8") for t in self.specials.tokens]

    @functools.cached_property
    def piece_ids(self) -> dict[bytes, int]:
        return {p: i for i, p in enumerate(self.pieces, FIRST_PIECE_ID)}

    @functools.cached_property
    def piece_lengths(self) -> npt.NDArray[np.int64]:
        """Bytes of each id's piece (0 for the reserved ids; special tokens are not pieces: 0)."""
        out = np.zeros(self.first_special_id, np.int64)
        out[FIRST_PIECE_ID:] = np.diff(self.arrays.piece_offsets)
        return out

    def id_to_piece(self, token_id: int) -> bytes | str:
        """The piece's bytes, or the name (str) of a reserved or special token."""
        self.check_id(token_id)
        if token_id >= self.first_special_id:
            return self.specials.tokens[token_id - self.first_special_id]
        return SPECIAL_TOKENS[token_id] if token_id < FIRST_PIECE_ID else self.pieces[token_id - FIRST_PIECE_ID]

    def piece_to_id(self, piece: bytes | str) -> int:
        if isinstance(piece, str):
            if piece in SPECIAL_TOKENS:
                return SPECIAL_TOKENS.index(piece)
            if piece in self.specials.ids:  # a str names a special token first
                return self.specials.ids[piece]
            piece = piece.encode("utf-8")
        if not isinstance(piece, (bytes, bytearray)):
            raise InputError(f"a piece is bytes (or str for its UTF-8), got {type(piece).__name__}")
        try:
            return self.piece_ids[bytes(piece)]
        except KeyError:
            raise InputError(f"{bytes(piece)!r} is not a piece of this vocabulary") from None

    def check_id(self, token_id: object) -> None:
        if not (type(token_id) is int or (isinstance(token_id, np.integer) and not isinstance(token_id, np.bool_))):
            raise InputError(f"token id {token_id!r} is not an integer (ids are ints from 0 to {self.vocab_size - 1})")
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"id {token_id!r} is outside this vocabulary (0..{self.vocab_size - 1})")

    def decode_bytes(self, ids: Iterable[int] | npt.NDArray[np.integer]) -> bytes:
        """Concatenated bytes of ``ids`` (ids 0-2 contribute nothing)."""
        if isinstance(ids, np.ndarray):
            if ids.dtype.kind not in "iu":
                raise InputError(f"ids must be integers, got an array of {ids.dtype}")
            ids = ids.tolist()
        elif isinstance(ids, (str, bytes, bytearray, memoryview)):
            raise InputError(f"ids must be a sequence of integers, got {type(ids).__name__}; "
                             "to encode text use encode()")
        elif not isinstance(ids, list):
            try:
                ids = list(ids)
            except TypeError:
                raise InputError(f"ids must be a sequence of integers, got {type(ids).__name__}") from None
        table = self.id_bytes
        try:
            if all(type(i) is int for i in ids) and (not ids or min(ids) >= 0):
                return b"".join([table[i] for i in ids])
        except IndexError:
            pass
        for i in ids:
            self.check_id(i)
        return b"".join([table[int(i)] for i in ids])

    # -- normalization ----------------------------------------------------------------------------
    def normalize(self, text: str | bytes) -> bytes:
        """The UTF-8 bytes the model segments (after NFC unless normalization is "none")."""
        return to_utf8(text, self.normalization)

    # -- kernel tables ------------------------------------------------------------------------------
    def tables(self, alpha: float) -> KernelTables:
        """The kernels' arguments for Viterbi (``alpha < 0``) or for sampling with ``alpha``."""
        if alpha < 0:
            return KernelTables(self.base_check, self.pair, self.cell_piece, self.cell_scores, VITERBI,
                                self.max_piece_length, 0.0)
        cached = self._sampling.get(alpha)
        if cached is not None:
            return cached
        with np.errstate(over="ignore"):
            scaled = alpha * self.scores
        if scaled[FIRST_PIECE_ID:].min() >= _LINEAR_MIN_LOG_WEIGHT:
            values, mode = self.cell_values(np.exp(scaled), 0.0), LINEAR
        else:
            values, mode = self.cell_scores, LOG
        tables = KernelTables(self.base_check, self.pair, self.cell_piece, values, mode, self.max_piece_length, alpha)
        self._sampling[alpha] = tables
        if len(self._sampling) > _SAMPLING_TABLES:
            self._sampling.popitem(last=False)
        return tables

    def cell_values(self, values_by_id: npt.NDArray[np.float64], missing: float) -> npt.NDArray[np.float64]:
        """A per-id array laid out per trie cell, as the kernels read it (``missing`` where no
        piece ends)."""
        out = np.full(len(self.cell_piece), missing, dtype=np.float64)
        terminal = self.cell_piece >= 0
        out[terminal] = values_by_id[self.cell_piece[terminal]]
        return out

    @functools.cached_property
    def forward_trie(self):
        """The trie of the pieces as written (prefix queries: "does a longer piece start so?")."""
        from ..kernels.trie import build_trie

        return build_trie(self.pieces, np.arange(FIRST_PIECE_ID, self.first_special_id, dtype=np.int32))

    # -- one text -----------------------------------------------------------------------------
    def segment(self, data: bytes, alpha: float = -1.0, seed: np.uint64 = NO_SEED) -> list[int]:
        """Piece ids of the normalized bytes ``data`` (one document: stream 0 of ``seed``)."""
        if self.has_python_path(alpha) and coldstart.python_covers(len(data)):
            if alpha < 0:
                return coldstart.viterbi_ids(*self.coldstart_views, data)
            return self._python_sample(data, alpha, coldstart.seed_state(int(seed), 0))[0]
        ids = self.segment_array(data, alpha, seed)
        if ids.shape[0] >= SHARED_IDS_MIN:
            return shared_ids(self.vocab_size).take(ids).tolist()
        return ids.tolist()

    def segment_array(self, data: bytes, alpha: float = -1.0,
                      seed: np.uint64 = NO_SEED) -> npt.NDArray[np.int32]:
        """:meth:`segment` as an int32 array, always through the kernels."""
        K = coldstart.kernels()
        text = np.frombuffer(data, dtype=np.uint8)
        if alpha < 0 and len(text) <= K.WINDOW:
            return K.viterbi_encode(self.base_check, self.pair, self.cell_piece, self.cell_scores, text)
        ids, _ = self.segment_documents(text, np.array([0, len(text)], np.int64), alpha=alpha, seed=seed)
        return ids

    @functools.cached_property
    def coldstart_views(self) -> tuple[memoryview, memoryview, memoryview, memoryview]:
        """The arrays as memoryviews, whose items index as plain ints and floats (numpy
        scalars would be several times slower in ``coldstart``)."""
        return self.base_check.data, self.pair.data, self.cell_piece.data, self.cell_scores.data

    # -- documents ------------------------------------------------------------------------------
    def segment_documents(self, buf: npt.NDArray[np.uint8], bounds: npt.NDArray[np.int64], *, alpha: float = -1.0,
                          seed: np.uint64 = NO_SEED, doc_segments: npt.NDArray[np.int64] | None = None,
                          special: npt.NDArray[np.int32] | None = None, doc_base: int = 0, bos: int = -1,
                          eos: int = -1) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """(ids, ``n + 1`` token offsets) of documents in ``buf``: the kernel
        ``kernels.encode.encode_segments`` (its docstring says what each argument means);
        without ``doc_segments`` every span of ``bounds`` is a document, and without special
        tokens either, ``kernels.encode.encode_documents`` does the work (the same ids)."""
        K = coldstart.kernels()
        t = self.tables(alpha)
        if doc_segments is None and special is None and (
                len(bounds) < 2 or int(np.diff(bounds).max()) <= max(K.WINDOW, 4 * t.max_len)):
            return K.encode_documents(t.base_check, t.pair, t.piece, t.values, K.MODE_TAGS[t.mode], t.max_len,
                                      float(t.alpha), buf, bounds, np.uint64(seed), np.int64(doc_base), np.int64(bos),
                                      np.int64(eos), K.WINDOW)
        segs = np.arange(len(bounds), dtype=np.int64) if doc_segments is None else doc_segments
        marks = _NO_SPECIALS if special is None else special
        ids, token_offsets, _ = K.encode_segments(t.base_check, t.pair, t.piece, t.values, K.MODE_TAGS[t.mode], t.max_len,
                                                  float(t.alpha), buf, bounds, segs, marks, np.uint64(seed),
                                                  np.int64(doc_base), np.int64(bos), np.int64(eos), K.WINDOW)
        return ids, token_offsets

    def has_python_path(self, alpha: float) -> bool:
        """Whether plain Python can segment with ``alpha``: Viterbi, or sampling in the linear
        domain (see ``coldstart``; whether the budget covers the bytes is asked separately)."""
        return alpha < 0 or self.tables(alpha).mode == LINEAR

    def _python_sample(self, data: bytes, alpha: float, state: int) -> tuple[list[int], int]:
        t = self.tables(alpha)
        bc, pair, piece, _ = self.coldstart_views
        return coldstart.sample_ids(bc, pair, piece, t.values.data, t.max_len, data, state)

    def python_documents(self, data: bytes, bounds: Sequence[int], doc_segments: Sequence[int],
                         special: Sequence[int] | None, bos: int, eos: int, alpha: float = -1.0,
                         seed: np.uint64 = NO_SEED, doc_base: int = 0
                         ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """:meth:`segment_documents` in plain Python (see ``coldstart``): Viterbi, or sampling
        where :meth:`has_python_path` says so."""
        views = self.coldstart_views
        flat: list[int] = []
        token_offsets = [0]
        for d in range(len(doc_segments) - 1):
            if bos >= 0:
                flat.append(bos)
            state = coldstart.seed_state(int(seed), doc_base + d) if alpha >= 0 else 0
            for s in range(doc_segments[d], doc_segments[d + 1]):
                if special is not None and special[s] >= 0:
                    flat.append(special[s])
                elif alpha < 0:
                    flat.extend(coldstart.viterbi_ids(*views, data[bounds[s]:bounds[s + 1]]))
                else:
                    ids, state = self._python_sample(data[bounds[s]:bounds[s + 1]], alpha, state)
                    flat.extend(ids)
            if eos >= 0:
                flat.append(eos)
            token_offsets.append(len(flat))
        return np.array(flat, dtype=np.int32), np.array(token_offsets, dtype=np.int64)

    def warmup(self) -> None:
        """Load the kernels now and run each encode mode once (compiling them on a first run)."""
        text = np.frombuffer(b"warm up\n\n", dtype=np.uint8)
        self.segment_array(text.tobytes())
        for alpha in (-1.0, 0.5, 1e6):
            self.segment_documents(text, np.array([0, len(text)], np.int64), alpha=alpha)


_NO_SPECIALS = np.zeros(0, dtype=np.int32)
