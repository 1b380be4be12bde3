"""``Tokenizer``: a thin Python layer over the numba kernels.

Everything per text that is not the segmentation itself (NFC, UTF-8, list building) stays in
C-implemented builtins, so a per-line ``encode`` costs one kernel call plus a few microseconds;
``encode_batch`` amortises even that and spreads documents over threads (the kernels release
the GIL). A tokenizer loaded from a model file takes its arrays from the cache in
``bytepiece.cache``, and numba itself is imported only when a process has encoded more than a
few kilobytes (``bytepiece.coldstart``), so a one-line command starts in a fraction of a second.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union, overload

import numpy as np
import numpy.typing as npt

from . import cache
from . import specials as _specials
from . import coldstart as _cold
from .batching import NO_SEED, encode_flat, id_lists, shared_ids
from .coldstart import python_encodes as python_encodes  # for callers that ask the tokenizer module
from .coldstart import viterbi_ids
from .errors import InputError
from .kernels.trie import Trie, build_trie
from .model import BOS_ID, EOS_ID, FIRST_PIECE_ID, PAD_ID, SPECIAL_TOKENS, Model, ModelSource
from .normalize import NFC, NORMALIZATIONS, to_utf8
from .options import Seed, alpha_value, kernel_seed, resolve_threads

Text = Union[str, bytes]

# p ** alpha must stay far from underflow for the linear-domain sampler (it rescales within
# [1e-100, 1e100]); below this log weight the log-domain sampler takes over.
_LINEAR_MIN_LOG_WEIGHT = -200.0
_INF = float("inf")
# Arrays at least this long become lists through the shared id objects (``batching.shared_ids``).
_SHARED_IDS_MIN = 48

class Tokenizer:
    """Byte-level Unigram tokenizer, loading original BytePiece models.

    ``normalization="nfc"`` (default) matches the original: text is NFC-normalized, so
    ``decode(encode(t)) == NFC(t)``. ``normalization="none"`` encodes the UTF-8 bytes exactly
    as given, so ``decode_bytes(encode(b)) == b`` for any bytes.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, model: ModelSource, *, normalization: Literal["nfc", "none"] = "nfc",
                 special_tokens: Iterable[str] = ()) -> None:
        if normalization not in NORMALIZATIONS:
            raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        arrays, loaded, metadata = cache.load_arrays(model)
        if loaded is not None:
            self.model = loaded
        self._metadata = metadata
        self._arrays = arrays
        self._encoder = Trie(arrays.base_check, arrays.piece, arrays.max_depth)
        self._bc, self._piece_of_cell = arrays.base_check, arrays.piece  # the kernels' arguments, one lookup away
        self._pair = arrays.pair
        self._cell_scores = arrays.cell_scores
        self.scores = arrays.scores
        self._sampling_cache: OrderedDict[float, tuple[int, npt.NDArray[np.float64]]] = OrderedDict()
        self._special_tokens: tuple[str, ...] = (loaded.special_tokens if loaded is not None
                                                 else cache.special_tokens(metadata, arrays.vocab_size))
        if self._special_tokens:
            self._id_to_bytes[self._arrays.vocab_size:] = [t.encode("utf-8") for t in self._special_tokens]
        if special_tokens:
            self.add_special_tokens(special_tokens)

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def from_counts(cls, counts: dict[bytes, int], **kwargs) -> Tokenizer:
        return cls(Model.from_counts(counts), **kwargs)

    def __reduce__(self):
        return (_restore, (self.model, self.normalization))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, normalization={self.normalization!r})"

    @functools.cached_property
    def model(self) -> Model:
        """The model (pieces, counts, metadata); built from the cached arrays on first use."""
        return Model(self._piece_list, np.array(self._arrays.counts), dict(self._metadata), self._special_tokens)

    @functools.cached_property
    def _piece_list(self) -> list[bytes]:
        loaded = self.__dict__.get("model")
        return loaded.pieces if loaded is not None else self._arrays.pieces()

    # -- vocabulary -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: reserved, pieces and special tokens."""
        return self._arrays.vocab_size + len(self._special_tokens)

    @property
    def max_piece_length(self) -> int:
        return self._encoder.max_depth

    @functools.cached_property
    def _trie(self) -> Trie:
        """The trie of the pieces as written (for prefix queries); built on first use."""
        return build_trie(self._piece_list, np.arange(FIRST_PIECE_ID, self._arrays.vocab_size, dtype=np.int32))

    @functools.cached_property
    def _piece_to_id(self) -> dict[bytes, int]:
        return {p: i for i, p in enumerate(self._piece_list, FIRST_PIECE_ID)}

    @functools.cached_property
    def _id_to_bytes(self) -> list[bytes]:
        return [b""] * FIRST_PIECE_ID + self._piece_list

    @functools.cached_property
    def _views(self) -> tuple[memoryview, memoryview, memoryview, memoryview]:
        """The arrays as memoryviews, whose items index as plain ints and floats (for
        ``coldstart``; numpy scalars would be several times slower there)."""
        a = self._arrays
        return a.base_check.data, a.pair.data, a.piece.data, a.cell_scores.data

    def id_to_piece(self, id: int) -> bytes | str:
        """The piece's bytes, or the special token's name (str) for ids 0-2 and special tokens."""
        self._check_id(id)
        if id >= self._arrays.vocab_size:
            return self._special_tokens[id - self._arrays.vocab_size]
        return SPECIAL_TOKENS[id] if id < FIRST_PIECE_ID else self._id_to_bytes[id]

    def piece_to_id(self, piece: bytes | str) -> int:
        if isinstance(piece, str):
            if piece in SPECIAL_TOKENS:
                return SPECIAL_TOKENS.index(piece)
            if self._special_tokens and piece in self._special.ids:  # a str names a special token first
                return self._special.ids[piece]
            piece = piece.encode("utf-8")
        try:
            return self._piece_to_id[piece]
        except KeyError:
            raise InputError(f"{piece!r} is not a piece of this vocabulary") from None

    def pieces(self) -> list[bytes]:
        """All pieces in id order (index i holds id i + 3)."""
        return list(self._piece_list)

    def _check_id(self, id: int) -> None:
        if not (isinstance(id, (int, np.integer)) and 0 <= id < self.vocab_size):
            raise InputError(f"id {id!r} is outside this vocabulary (0..{self.vocab_size - 1})")

    # -- encoding ---------------------------------------------------------------------------
    def warmup(self) -> None:
        """Load the numba kernels now (0.3-0.6 s, once per process) instead of on the first
        input that is too large for the plain-Python start (``bytepiece.coldstart``), so that
        every later call runs at full speed; benchmarks call it before timing."""
        K = _cold.kernels()
        text = b"warm up\n\n"
        self._encode_array(text, -1.0, None)
        self._encode_array(text, 0.5, 0)
        for alpha in (-1.0, 0.5):
            mode, values = (K.VITERBI, self._cell_scores) if alpha < 0 else self._sampler(alpha)
            K.encode_documents(self._bc, self._pair, self._piece_of_cell, values, mode, self._encoder.max_depth,
                               max(alpha, 0.0), np.frombuffer(text, dtype=np.uint8), np.array([0, len(text)]), NO_SEED,
                               0, -1, -1)

    def normalize(self, text: Text) -> bytes:
        """The UTF-8 bytes the model segments (after NFC unless normalization='none')."""
        return to_utf8(text, self.normalization)

    def _sampler(self, alpha: float) -> tuple[int, npt.NDArray[np.float64]]:
        """Kernel mode and per-cell values for ``alpha`` (weights p**alpha, or log p)."""
        cached = self._sampling_cache.get(alpha)
        if cached is not None:
            return cached
        K = _cold.kernels()
        with np.errstate(over="ignore"):
            scaled = alpha * self.scores
        if scaled[FIRST_PIECE_ID:].min() >= _LINEAR_MIN_LOG_WEIGHT:
            entry = (K.LINEAR, self._encoder.cell_values(np.exp(scaled), 0.0))
        else:
            entry = (K.LOG, self._cell_scores)
        self._sampling_cache[alpha] = entry
        if len(self._sampling_cache) > 16:
            self._sampling_cache.popitem(last=False)
        return entry

    def _encode_array(self, data: bytes, alpha: float, seed: Seed) -> npt.NDArray[np.int32]:
        K = _cold.kernel_module or _cold.kernels()
        text = np.frombuffer(data, dtype=np.uint8)
        if alpha < 0:
            return K.viterbi_encode(self._bc, self._pair, self._piece_of_cell, self._cell_scores, text)
        mode, values = self._sampler(alpha)
        return K.sample_encode(self._bc, self._pair, self._piece_of_cell, values, mode, self._encoder.max_depth, alpha,
                               text, kernel_seed(seed))

    def _id_list(self, data: bytes, alpha: float, seed: Seed) -> list[int]:
        if alpha < 0 and _cold.kernel_module is None and _cold.python_covers(len(data)):
            return viterbi_ids(*self._views, data)
        ids = self._encode_array(data, alpha, seed)
        if ids.shape[0] >= _SHARED_IDS_MIN:
            return shared_ids(self.vocab_size).take(ids).tolist()
        return ids.tolist()

    def encode(
        self,
        text: Text,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float = -1.0,
        seed: Seed = None,
        *,
        allowed_special: _specials.AllowedSpecial = (),
    ) -> list[int]:
        """Token ids of ``text``. ``alpha >= 0`` samples a segmentation with probability
        proportional to ``prod p(piece) ** alpha`` (0: uniform); ``seed`` makes it reproducible.
        ``allowed_special`` ("all" or a set) names the special tokens to match in the text."""
        if allowed_special:
            return _specials.encode(self, text, allowed_special, add_bos=add_bos, add_eos=add_eos, alpha=alpha, seed=seed)
        if not (type(alpha) is float and -_INF < alpha < _INF):
            alpha = alpha_value(alpha)
        ids = self._id_list(to_utf8(text, self.normalization), alpha, seed)
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def tokenize(self, text: Text, alpha: float = -1.0, seed: Seed = None) -> list[bytes]:
        """The pieces (as bytes) that ``encode`` would return ids for."""
        table = self._id_to_bytes
        return [table[i] for i in self._id_list(to_utf8(text, self.normalization), alpha_value(alpha), seed)]

    @overload
    def encode_batch(
        self, texts: Iterable[Text], *, add_bos: bool = ..., add_eos: bool = ..., alpha: float = ..., seed: Seed = ...,
        num_threads: int | None = ..., return_flat: Literal[False] = ...,
    ) -> list[list[int]]: ...
    @overload
    def encode_batch(
        self, texts: Iterable[Text], *, add_bos: bool = ..., add_eos: bool = ..., alpha: float = ..., seed: Seed = ...,
        num_threads: int | None = ..., return_flat: Literal[True],
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...

    def encode_batch(
        self,
        texts: Iterable[Text],
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float = -1.0,
        seed: Seed = None,
        num_threads: int | None = None,
        return_flat: bool = False,
        allowed_special: _specials.AllowedSpecial = (),
    ) -> Any:
        """Encode many texts on ``num_threads`` threads (default: all cores).

        Returns a list of id lists, or with ``return_flat=True`` one int32 array of all ids and
        an int64 array of ``len(texts) + 1`` offsets (document i is ``ids[off[i]:off[i+1]]``).
        Sampling with a given seed gives the same result for any thread count.
        """
        if allowed_special:
            return _specials.encode_batch(self, texts, allowed_special, add_bos=add_bos, add_eos=add_eos, alpha=alpha,
                                          seed=seed, num_threads=num_threads, return_flat=return_flat)
        if isinstance(texts, (str, bytes, bytearray, memoryview)):
            raise InputError("encode_batch expects an iterable of texts; use encode() for a single text")
        flat, token_offsets = encode_flat(self, texts if isinstance(texts, list) else list(texts),
                                          alpha=alpha_value(alpha), seed=seed, bos=BOS_ID if add_bos else -1,
                                          eos=EOS_ID if add_eos else -1, threads=resolve_threads(num_threads))
        if return_flat:
            return flat, token_offsets
        return id_lists(flat, token_offsets, self.vocab_size)

    # -- decoding ---------------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int] | npt.NDArray[np.integer]) -> bytes:
        """Concatenated piece bytes; special tokens (ids 0-2) contribute nothing."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        elif not isinstance(ids, list):
            ids = list(ids)
        table = self._id_to_bytes
        try:
            parts = [table[i] for i in ids]
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, (int, np.integer)) and 0 <= i < len(table)))
            raise InputError(f"id {bad!r} is outside this vocabulary (0..{self.vocab_size - 1})") from None
        if parts and min(ids) < 0:
            raise InputError(f"id {min(ids)} is outside this vocabulary (0..{self.vocab_size - 1})")
        return b"".join(parts)

    def decode(self, ids: Iterable[int] | npt.NDArray[np.integer], errors: str = "replace") -> str:
        """Text of ``ids``. Bytes that are not valid UTF-8 (possible when ids were sampled from a
        model, not produced by ``encode``) become U+FFFD by default; ``errors="strict"`` raises."""
        return self.decode_bytes(ids).decode("utf-8", errors)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model in the original JSON format (atomic)."""
        self.model.save(path)

    def to_sentencepiece(self, path: str | os.PathLike, *, style: str = "byte_fallback") -> Path:
        """Export as a sentencepiece Unigram ``ModelProto``; returns the path written.

        ``style="byte_fallback"`` (readable pieces, ``<0xNN>`` byte tokens for the rest) or
        ``"byte_level"`` (every piece kept, bytes mapped to characters). Loading the file needs
        the ``sentencepiece`` extra; docs/interop.md lists where the ids can differ."""
        from .interop.sentencepiece import export_sentencepiece

        return export_sentencepiece(self, path, style=style)  # type: ignore[arg-type]

    def to_hf(self, path: str | os.PathLike, *, style: str = "byte_level") -> Path:
        """Export as an HF ``tokenizer.json`` Unigram model; returns the path written.

        The default ``style="byte_level"`` keeps every piece (bytes mapped to characters, as in
        GPT-2) and gives exactly bytepiece's ids; ``"byte_fallback"`` gives readable tokens with
        ``<0xNN>`` byte fallback, at the cost of pieces that are not valid UTF-8. Loading needs
        the ``hf`` extra."""
        from .interop.hf import export_hf

        return export_hf(self, path, style=style)  # type: ignore[arg-type]


    # -- special tokens, offsets, lattice, streaming (issue 11) ---------------------------------
    def add_special_tokens(self, tokens: Iterable[str]) -> int:
        """Give each of ``tokens`` an id after the last one (tokens already known keep theirs);
        returns how many were new. ``encode(..., allowed_special=...)`` matches them in text."""
        before = len(self._special_tokens)
        self.model = self.model.with_special_tokens(tokens)
        self._special_tokens = self.model.special_tokens
        self._id_to_bytes[self._arrays.vocab_size:] = [t.encode("utf-8") for t in self._special_tokens]
        self.__dict__.pop("_special", None)
        return len(self._special_tokens) - before

    @functools.cached_property
    def _special(self) -> _specials.SpecialTokens:
        """Ids and matching automata of the special tokens (rebuilt when tokens are added)."""
        return _specials.SpecialTokens(self.model)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The special tokens in id order (ids ``model.vocab_size`` on)."""
        return self._special_tokens

    def encode_with_offsets(self, text: Text, *, unit: Literal["char", "byte"] = "char",
                            allowed_special: _specials.AllowedSpecial = ()) -> tuple[list[int], list[tuple[int, int]]]:
        """``(ids, offsets)``: ``offsets[i]`` is the ``(start, end)`` span of token i in the input
        (before normalization), in characters or in bytes of its UTF-8; see ``bytepiece.offsets``."""
        from .offsets import encode_with_offsets

        return encode_with_offsets(self, text, unit=unit, allowed_special=allowed_special)

    @functools.cached_property
    def _lattice(self):
        from .lattice import Lattice

        return Lattice(self)

    def nbest(self, text: Text, n: int) -> list[tuple[list[int], float]]:
        """The ``n`` most probable segmentations, best first, as ``(ids, log probability)``;
        the first is ``encode(text)``. Fewer when the text has fewer segmentations."""
        return self._lattice.nbest(text, n)

    def score(self, text: Text, ids: Iterable[int] | npt.NDArray[np.integer]) -> float:
        """Log probability of the segmentation ``ids`` of ``text`` (ids must spell the text)."""
        return self._lattice.score(text, ids)

    def sample(self, text: Text, n: int, *, alpha: float = 1.0, seed: Seed = None) -> list[tuple[list[int], float]]:
        """``n`` independent exact samples from ``p(S) ** alpha`` over segmentations, each with
        its log probability (as ``score``)."""
        return self._lattice.sample(text, n, alpha, seed)

    def entropy(self, text: Text, *, alpha: float = 1.0) -> float:
        """Entropy in nats of the distribution ``p(S) ** alpha`` (normalized) over segmentations."""
        return self._lattice.entropy(text, alpha)

    def decode_stream(self, *, errors: str = "replace"):
        """An incremental decoder: ``step(id)`` returns the text completed by that id."""
        from .streaming import DecodeStream

        return DecodeStream(self, errors=errors)

    def encode_stable(self, text: Text) -> tuple[list[int], Text]:
        """``(ids, tail)``: the longest prefix of ``encode(text)`` that no continuation of the
        text can change, and the rest of the text; see ``bytepiece.stable``."""
        from .stable import encode_stable

        return encode_stable(self, text)


def _restore(model: Model, normalization: str) -> Tokenizer:
    return Tokenizer(model, normalization=normalization)  # type: ignore[arg-type]
