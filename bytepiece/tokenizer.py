"""``Tokenizer``: a thin Python layer over the numba kernels.

Everything per text that is not the segmentation itself (NFC, UTF-8, list conversion) stays
in C-implemented builtins, so a per-line ``encode`` costs one kernel call plus a few
microseconds; ``encode_batch`` amortises even that and spreads documents over threads (the
kernels release the GIL).
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Union, overload

import numpy as np
import numpy.typing as npt

from .engine.pool import thread_pool
from . import specials as _specials
from .errors import InputError
from .kernels import encode as K
from .kernels.trie import Trie, build_trie
from .model import BOS_ID, EOS_ID, FIRST_PIECE_ID, PAD_ID, SPECIAL_TOKENS, Model, ModelSource, load_model
from .normalize import NFC, NORMALIZATIONS, to_utf8

Seed = Union[int, np.random.Generator, None]
Text = Union[str, bytes]

# p ** alpha must stay far from underflow for the linear-domain sampler (it rescales within
# [1e-100, 1e100]); below this log weight the log-domain sampler takes over.
_LINEAR_MIN_LOG_WEIGHT = -200.0
_SEED_MASK = (1 << 63) - 1  # kernels take the seed as a non-negative int64


def _seed_to_int(seed: Seed) -> int:
    """A 63-bit seed for the kernels (a plain int converts without allocating numpy scalars)."""
    if type(seed) is int:
        return seed & _SEED_MASK
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") & _SEED_MASK
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 1 << 63, dtype=np.int64))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed) & _SEED_MASK
    raise InputError(f"seed must be an int, a numpy Generator or None, got {seed!r}")


class Tokenizer:
    """Byte-level Unigram tokenizer, loading original BytePiece models.

    ``normalization="nfc"`` (default) matches the original: text is NFC-normalized, so
    ``decode(encode(t)) == NFC(t)``. ``normalization="none"`` encodes the UTF-8 bytes exactly
    as given, so ``decode_bytes(encode(b)) == b`` for any bytes.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, model: ModelSource, *, normalization: Literal["nfc", "none"] = NFC,
                 special_tokens: Iterable[str] = ()) -> None:
        if normalization not in NORMALIZATIONS:
            raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.model: Model = load_model(model)
        self.normalization = normalization
        pieces = self.model.pieces
        n = self.model.vocab_size
        # The kernels walk pieces backwards from each end position (see kernels/encode.py).
        self._encoder = build_trie([p[::-1] for p in pieces], np.arange(FIRST_PIECE_ID, n, dtype=np.int32))
        counts = self.model.counts.astype(np.float64)
        # Same float64 operations as the original (np.log per count minus np.log of the total),
        # so Viterbi ties resolve identically.
        self.scores = np.zeros(n, dtype=np.float64)
        self.scores[FIRST_PIECE_ID:] = np.log(counts) - np.log(int(self.model.counts.sum()))
        self._cell_scores = self._encoder.cell_values(self.scores, -np.inf)
        self._pair = self._encoder.pair_cells()
        self._id_to_bytes: list[bytes] = [b""] * FIRST_PIECE_ID + list(pieces)
        self._sampling_cache: OrderedDict[float, tuple[int, npt.NDArray[np.float64]]] = OrderedDict()
        self.add_special_tokens(special_tokens)

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def from_counts(cls, counts: dict[bytes, int], **kwargs) -> Tokenizer:
        return cls(Model.from_counts(counts), **kwargs)

    def __reduce__(self):
        return (_restore, (self.model, self.normalization))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, normalization={self.normalization!r})"

    # -- vocabulary -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: reserved, pieces and special tokens."""
        return self.model.vocab_size + len(self.model.special_tokens)

    @property
    def max_piece_length(self) -> int:
        return self._encoder.max_depth

    @functools.cached_property
    def _trie(self) -> Trie:
        """The trie of the pieces as written (for prefix queries); built on first use."""
        return build_trie(self.model.pieces, np.arange(FIRST_PIECE_ID, self.model.vocab_size, dtype=np.int32))

    @functools.cached_property
    def _piece_to_id(self) -> dict[bytes, int]:
        return {p: i for i, p in enumerate(self.model.pieces, FIRST_PIECE_ID)}

    def id_to_piece(self, id: int) -> bytes | str:
        """The piece's bytes, or the special token's name (str) for ids 0-2 and special tokens."""
        self._check_id(id)
        if id >= self.model.vocab_size:
            return self.model.special_tokens[id - self.model.vocab_size]
        return SPECIAL_TOKENS[id] if id < FIRST_PIECE_ID else self._id_to_bytes[id]

    def piece_to_id(self, piece: bytes | str) -> int:
        if isinstance(piece, str):
            if piece in SPECIAL_TOKENS:
                return SPECIAL_TOKENS.index(piece)
            if piece in self._special.ids:  # a str names a special token before a piece
                return self._special.ids[piece]
            piece = piece.encode("utf-8")
        try:
            return self._piece_to_id[piece]
        except KeyError:
            raise InputError(f"{piece!r} is not a piece of this vocabulary") from None

    def pieces(self) -> list[bytes]:
        """All pieces in id order (index i holds id i + 3)."""
        return list(self.model.pieces)

    def _check_id(self, id: int) -> None:
        if not (isinstance(id, (int, np.integer)) and 0 <= id < self.vocab_size):
            raise InputError(f"id {id!r} is outside this vocabulary (0..{self.vocab_size - 1})")

    # -- encoding ---------------------------------------------------------------------------
    def normalize(self, text: Text) -> bytes:
        """The UTF-8 bytes the model segments (after NFC unless normalization='none')."""
        return to_utf8(text, self.normalization)

    def _sampler(self, alpha: float) -> tuple[int, npt.NDArray[np.float64]]:
        """Kernel mode and per-cell values for ``alpha`` (weights p**alpha, or alpha*log p)."""
        cached = self._sampling_cache.get(alpha)
        if cached is not None:
            return cached
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
            raise InputError(f"alpha must be a finite number (negative for deterministic), got {alpha!r}")
        scaled = alpha * self.scores
        if scaled[FIRST_PIECE_ID:].min() >= _LINEAR_MIN_LOG_WEIGHT:
            entry = (K.LINEAR, self._encoder.cell_values(np.exp(scaled), 0.0))
        else:
            entry = (K.LOG, self._encoder.cell_values(scaled, -np.inf))
        self._sampling_cache[alpha] = entry
        if len(self._sampling_cache) > 16:
            self._sampling_cache.popitem(last=False)
        return entry

    def _encode_array(self, data: bytes, alpha: float, seed: Seed) -> npt.NDArray[np.int32]:
        text = np.frombuffer(data, dtype=np.uint8)
        trie = self._encoder
        if alpha < 0:
            return K.viterbi_encode(trie.base_check, self._pair, trie.piece, self._cell_scores, text)
        mode, values = self._sampler(alpha)
        return K.sample_encode(trie.base_check, self._pair, trie.piece, values, mode, trie.max_depth, text, _seed_to_int(seed))

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
        ids = self._encode_array(self.normalize(text), alpha, seed).tolist()
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def tokenize(self, text: Text, alpha: float = -1.0, seed: Seed = None) -> list[bytes]:
        """The pieces (as bytes) that ``encode`` would return ids for."""
        table = self._id_to_bytes
        return [table[i] for i in self._encode_array(self.normalize(text), alpha, seed).tolist()]

    @overload
    def encode_batch(self, texts: Iterable[Text], *, return_flat: Literal[False] = ..., **kw) -> list[list[int]]: ...
    @overload
    def encode_batch(
        self, texts: Iterable[Text], *, return_flat: Literal[True], **kw
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
    ):
        """Encode many texts on ``num_threads`` threads (default: all cores).

        Returns a list of id lists, or with ``return_flat=True`` one int32 array of all ids and
        an int64 array of ``len(texts) + 1`` offsets (document i is ``ids[off[i]:off[i+1]]``).
        Sampling with a given seed gives the same result for any thread count.
        """
        if allowed_special:
            return _specials.encode_batch(self, texts, allowed_special, add_bos=add_bos, add_eos=add_eos, alpha=alpha,
                                          seed=seed, num_threads=num_threads, return_flat=return_flat)
        if isinstance(texts, (str, bytes)):
            raise InputError("encode_batch expects an iterable of texts; use encode() for a single text")
        threads = _resolve_threads(num_threads)
        if threads > 1:
            flat, token_offsets = self._encode_overlapped(list(texts), add_bos, add_eos, alpha, seed, threads)
        else:
            flat, token_offsets = self._encode_texts(texts, alpha, _seed_to_int(seed) if alpha >= 0 else 0, 0,
                                                     BOS_ID if add_bos else -1, EOS_ID if add_eos else -1)
        if return_flat:
            return flat, token_offsets
        ids = flat.tolist()
        bounds = token_offsets.tolist()
        return [ids[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]

    def _join(self, texts: Iterable[Text]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        datas = [self.normalize(t) for t in texts]
        offsets = np.zeros(len(datas) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in datas], out=offsets[1:])
        return np.frombuffer(b"".join(datas), dtype=np.uint8), offsets

    def _encode_texts(self, texts, alpha, seed64, doc_base, bos, eos):
        """One block of ``encode_batch`` on a worker thread: (flat ids, token offsets)."""
        buf, offsets = self._join(texts)
        out, counts = self._encode_block(buf, offsets, alpha, seed64, doc_base)
        return K.gather_documents(out, offsets, counts, bos, eos)

    def _encode_block(self, buf, offsets, alpha, seed64, doc_base):
        """Kernel call for one joined block: (ids per document at their byte offsets, counts)."""
        if alpha < 0:
            mode, values = K.VITERBI, self._cell_scores
        else:
            mode, values = self._sampler(alpha)
        n_docs = len(offsets) - 1
        out = np.empty(max(len(buf), 1), dtype=np.int32)
        counts = np.zeros(n_docs, dtype=np.int64)
        trie = self._encoder
        K.encode_documents(trie.base_check, self._pair, trie.piece, values, mode, trie.max_depth, buf, offsets,
                           0, n_docs, seed64, out, counts, doc_base)
        return out, counts

    def _encode_overlapped(self, texts, add_bos, add_eos, alpha, seed, threads):
        """Several threads: each job normalizes and joins its own block of texts, then encodes it.
        Normalizing is Python (it holds the GIL) and encoding is not (the kernels release it), so
        one thread's normalizing overlaps another's encoding instead of running before all of it."""
        seed64 = _seed_to_int(seed) if alpha >= 0 else 0
        if alpha >= 0:
            self._sampler(alpha)  # build the sampling table once, before the threads need it
        # About 8 blocks per thread of equal characters: a free thread takes the next block, so
        # the threads finish together even though bytes per character vary.
        chars = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
        n_blocks = min(len(texts), 8 * threads)
        cuts = np.unique(np.searchsorted(chars, np.linspace(0, chars[-1] if len(chars) else 0, n_blocks + 1)[1:-1]))
        bounds = [0, *[int(c) + 1 for c in cuts if c + 1 < len(texts)], len(texts)]
        bos, eos = BOS_ID if add_bos else -1, EOS_ID if add_eos else -1
        pool = thread_pool(threads)
        jobs = [pool.submit(self._encode_texts, texts[lo:hi], alpha, seed64, lo, bos, eos)
                for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        flats, token_offsets, shift = [], [np.zeros(1, np.int64)], 0
        for job in jobs:
            flat, offs = job.result()
            flats.append(flat)
            token_offsets.append(offs[1:] + shift)
            shift += len(flat)
        if not flats:
            return np.zeros(0, np.int32), np.zeros(1, np.int64)
        return np.concatenate(flats), np.concatenate(token_offsets)

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
        the ``sentencepiece`` extra; README "Interop" lists where the ids can differ."""
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
        before = len(self.model.special_tokens)
        self.model = self.model.with_special_tokens(tokens)
        self._id_to_bytes[self.model.vocab_size :] = [t.encode("utf-8") for t in self.model.special_tokens]
        self._special = _specials.SpecialTokens(self.model)
        return len(self.model.special_tokens) - before

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The special tokens in id order (ids ``model.vocab_size`` on)."""
        return self.model.special_tokens

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


def _resolve_threads(num_threads: int | None) -> int:
    if num_threads is None:
        return os.cpu_count() or 1
    if not isinstance(num_threads, int) or num_threads < 1:
        raise InputError(f"num_threads must be a positive integer or None (all cores), got {num_threads!r}")
    return num_threads

