"""``Tokenizer``: the public face of the tokenizer core.

Each method checks and converts its arguments, then asks the :class:`~.core.Segmenter` (one
text: :meth:`~.core.Segmenter.segment`) or the :class:`~.documents.DocumentEncoder` (documents,
special tokens, ``<bos>``/``<eos>``, sampling streams, threads). The other views of a
segmentation (n-best and scores, offsets, stable prefixes, streaming decode) are modules of
this package that take the core; this class only hands it to them.

A per-line ``encode`` costs one kernel call plus a few microseconds: everything per text that
is not the segmentation itself (NFC, UTF-8, list building) stays in C-implemented builtins, and
the first kilobytes of a process are segmented in plain Python (``coldstart``), so a one-line
command never waits for numba.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ..errors import BytePieceError, InputError, ModelFormatError
from ..model import Model, ModelSource, content_sha256
from ..options import Seed, alpha_value, kernel_seed, resolve_threads
from ..vocab import BOS_ID, EOS_ID, FIRST_PIECE_ID, PAD_ID
from .core import Segmenter, Text
from .documents import DocumentEncoder, EncodeOptions
from .idlists import id_lists
from .loading import load
from .specials import AllowedSpecial

_INF = float("inf")


class Tokenizer:
    """Byte-level Unigram tokenizer, loading original BytePiece models.

    ``normalization="nfc"`` (default) matches the original: text is NFC-normalized, so
    ``decode(encode(t)) == NFC(t)``. ``normalization="none"`` encodes the UTF-8 bytes exactly
    as given, so ``decode_bytes(encode(b)) == b`` for any bytes.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    _by_value = False  # see by_value()

    def __init__(self, model: ModelSource, *, normalization: Literal["nfc", "none"] = "nfc",
                 special_tokens: Iterable[str] = ()) -> None:
        loaded = load(model)
        self._core = Segmenter(loaded.arrays, normalization=normalization, special_tokens=loaded.special_tokens)
        self._core.add_special_tokens(special_tokens)
        self._loaded = loaded

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def of(cls, model: ModelSource | Tokenizer, *, normalization: Literal["nfc", "none"] | None = None) -> Tokenizer:
        """``model`` itself if it is a Tokenizer, else ``Tokenizer(model)``: how every function
        that takes "a Tokenizer or anything ``Tokenizer`` loads" gets its tokenizer. With
        ``normalization`` given, a Tokenizer that normalizes otherwise is replaced by one of the
        same model (its special tokens included) that normalizes so."""
        if isinstance(model, Tokenizer):
            if normalization is None or normalization == model.normalization:
                return model
            return cls(model.model, normalization=normalization)
        return cls(model) if normalization is None else cls(model, normalization=normalization)

    @classmethod
    def from_counts(cls, counts: dict[bytes, int], **kwargs: Any) -> Tokenizer:
        return cls(Model.from_counts(counts), **kwargs)

    def __reduce__(self):
        """A tokenizer loaded from a model file pickles as a reference to that file: its path, the
        hash of its model (``bytepiece.model.content_sha256``) and the options, a few hundred
        bytes however large the model, so worker processes (``datasets.map(num_proc=N)``,
        multiprocessing) receive it cheaply and load the file through the array cache. The file
        must then hold the same model, at the same path; any other tokenizer pickles its model."""
        path = None if self._by_value else self._loaded.path
        if path is None:
            return (_restore, (self.model, self.normalization))
        return (_restore_file, (str(path), self.model_sha256, self.normalization, self.special_tokens))

    def by_value(self) -> Tokenizer:
        """This tokenizer (sharing its arrays), pickling its model itself rather than a reference
        to its file: for processes that may not see the file, such as a remote cluster's workers."""
        clone = copy.copy(self)
        vars(clone).update(_by_value=True)
        return clone

    @functools.cached_property
    def model_sha256(self) -> str:
        """The model's identity, ``bytepiece.model.content_sha256`` (computed once: tens of
        milliseconds for a large vocabulary), as token files and manifests record it."""
        return content_sha256(self.model)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, normalization={self.normalization!r})"

    @property
    def segmenter(self) -> Segmenter:
        """The core this tokenizer is a facade over (for code that encodes documents itself,
        such as the corpus encoder: see :meth:`document_encoder`)."""
        return self._core

    @property
    def normalization(self) -> str:
        return self._core.normalization

    @functools.cached_property
    def model(self) -> Model:
        """The model (pieces, counts, metadata, special tokens); built from the arrays on first use."""
        base = self._loaded.model
        if base is None:
            base = Model(self._core.pieces, np.array(self._core.arrays.counts), dict(self._loaded.metadata))
        if base.special_tokens != self.special_tokens:
            base = Model(base.pieces, base.counts, base.metadata, self.special_tokens)
        return base

    # -- vocabulary -------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: reserved, pieces and special tokens."""
        return self._core.vocab_size

    @property
    def max_piece_length(self) -> int:
        return self._core.max_piece_length

    @property
    def scores(self) -> npt.NDArray[np.float64]:
        """log p of each id's piece (0 for ids 0-2 and special tokens)."""
        return self._core.scores

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The special tokens in id order (ids ``model.vocab_size`` on)."""
        return self._core.special_tokens

    def add_special_tokens(self, tokens: Iterable[str]) -> int:
        """Give each of ``tokens`` an id after the last one (tokens already known keep theirs);
        returns how many were new. ``encode(..., allowed_special=...)`` matches them in text."""
        added = self._core.add_special_tokens(tokens)
        if added:
            self.__dict__.pop("model", None)
        return added

    def id_to_piece(self, id: int) -> bytes | str:
        """The piece's bytes, or the special token's name (str) for ids 0-2 and special tokens."""
        return self._core.id_to_piece(id)

    def piece_to_id(self, piece: bytes | str) -> int:
        return self._core.piece_to_id(piece)

    def pieces(self) -> list[bytes]:
        """All pieces in id order (index i holds id ``first_piece_id + i``)."""
        return list(self._core.pieces)

    @property
    def first_piece_id(self) -> int:
        """The id of the first piece (3: ids 0-2 are reserved). Pieces take the ids up to
        ``first_piece_id + len(pieces()) - 1``; special tokens follow them."""
        return FIRST_PIECE_ID

    # -- encoding -----------------------------------------------------------------------------------
    def warmup(self) -> None:
        """Load the numba kernels now (0.3-0.6 s, once per process) instead of on the first
        input that is too large for the plain-Python start, so that every later call runs at
        full speed; benchmarks call it before timing."""
        self._core.warmup()

    def normalize(self, text: Text) -> bytes:
        """The UTF-8 bytes the model segments (after NFC unless normalization='none')."""
        return self._core.normalize(text)

    def encode(self, text: Text, add_bos: bool = False, add_eos: bool = False, alpha: float = -1.0,
               seed: Seed = None, *, allowed_special: AllowedSpecial = ()) -> list[int]:
        """Token ids of ``text``. ``alpha >= 0`` samples a segmentation with probability
        proportional to ``prod p(piece) ** alpha`` (0: uniform); ``seed`` makes it reproducible
        and is ignored without sampling (so a caller can pass one seed whether or not it samples;
        the command line, where that cannot help, refuses ``--seed`` without ``--sample``).
        ``allowed_special`` ("all" or a set) names the special tokens to match in the text."""
        if not (type(alpha) is float and -_INF < alpha < _INF):
            alpha = alpha_value(alpha)
        if allowed_special:
            options = EncodeOptions.make(self._core, alpha=alpha, seed=seed, add_bos=add_bos, add_eos=add_eos,
                                         allowed_special=allowed_special)
            data = self._core.normalize(text)
            flat, _ = DocumentEncoder(self._core, options).encode(data, np.array([0, len(data)], np.int64))
            return flat.tolist()
        ids = self._core.segment(self._core.normalize(text), alpha, kernel_seed(seed) if alpha >= 0 else np.uint64(0))
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def tokenize(self, text: Text, alpha: float = -1.0, seed: Seed = None) -> list[bytes]:
        """The pieces (as bytes) that ``encode`` would return ids for."""
        table = self._core.id_bytes
        return [table[i] for i in self.encode(text, alpha=alpha, seed=seed)]

    @overload
    def encode_batch(
        self, texts: Iterable[Text], *, add_bos: bool = ..., add_eos: bool = ..., alpha: float = ..., seed: Seed = ...,
        num_threads: int | None = ..., return_flat: Literal[False] = ..., allowed_special: AllowedSpecial = ...,
    ) -> list[list[int]]: ...
    @overload
    def encode_batch(
        self, texts: Iterable[Text], *, add_bos: bool = ..., add_eos: bool = ..., alpha: float = ..., seed: Seed = ...,
        num_threads: int | None = ..., return_flat: Literal[True], allowed_special: AllowedSpecial = ...,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...

    def encode_batch(self, texts: Iterable[Text], *, add_bos: bool = False, add_eos: bool = False,
                     alpha: float = -1.0, seed: Seed = None, num_threads: int | None = None, return_flat: bool = False,
                     allowed_special: AllowedSpecial = ()) -> Any:
        """Encode many texts on ``num_threads`` threads (default: all cores).

        Returns a list of id lists, or with ``return_flat=True`` one int32 array of all ids and
        an int64 array of ``len(texts) + 1`` offsets (document i is ``ids[off[i]:off[i+1]]``).
        Text i is document i of the batch: sampled with a seed, it draws from the seed's stream
        i, so the result does not depend on the thread count.
        """
        if isinstance(texts, (str, bytes, bytearray, memoryview)):
            raise InputError("encode_batch expects an iterable of texts; use encode() for a single text")
        encoder = self.document_encoder(alpha=alpha, seed=seed, add_bos=add_bos, add_eos=add_eos,
                                        allowed_special=allowed_special, num_threads=num_threads)
        flat, token_offsets = encoder.encode_texts(texts if isinstance(texts, list) else list(texts))
        if return_flat:
            return flat, token_offsets
        return id_lists(flat, token_offsets, self.vocab_size)

    def document_encoder(self, *, alpha: float = -1.0, seed: Seed = None, add_bos: bool = False,
                         add_eos: bool = False, allowed_special: AllowedSpecial = (),
                         num_threads: int | None = 1) -> DocumentEncoder:
        """The encoder behind :meth:`encode_batch`, for code that has its documents as normalized
        UTF-8 with offsets already (see :class:`~.documents.DocumentEncoder`)."""
        options = EncodeOptions.make(self._core, alpha=alpha, seed=seed, add_bos=add_bos, add_eos=add_eos,
                                     allowed_special=allowed_special)
        return DocumentEncoder(self._core, options, threads=resolve_threads(num_threads))

    # -- decoding -----------------------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int] | npt.NDArray[np.integer]) -> bytes:
        """Concatenated piece bytes; ids 0-2 contribute nothing, special tokens their text."""
        return self._core.decode_bytes(ids)

    def decode(self, ids: Iterable[int] | npt.NDArray[np.integer], errors: str = "replace") -> str:
        """Text of ``ids``. Bytes that are not valid UTF-8 (possible when ids were sampled from a
        model, not produced by ``encode``) become U+FFFD by default; ``errors="strict"`` raises."""
        return self._core.decode_bytes(ids).decode("utf-8", _codec_errors(errors))

    def decode_stream(self, *, errors: str = "replace"):
        """An incremental decoder: ``step(id)`` returns the text completed by that id."""
        from .streaming import DecodeStream

        return DecodeStream(self._core, errors=errors)

    # -- the lattice of segmentations -----------------------------------------------------------
    @functools.cached_property
    def _lattice(self):
        from .lattice import Lattice

        return Lattice(self._core)

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

    def encode_with_offsets(self, text: Text, *, unit: Literal["char", "byte"] = "char",
                            allowed_special: AllowedSpecial = ()) -> tuple[list[int], list[tuple[int, int]]]:
        """``(ids, offsets)``: ``offsets[i]`` is the ``(start, end)`` span of token i in the input
        (before normalization), in characters or in bytes of its UTF-8; see ``bytepiece.tokenizer.offsets``."""
        from .offsets import encode_with_offsets

        return encode_with_offsets(self._core, text, unit=unit, allowed_special=allowed_special)

    def encode_stable(self, text: Text) -> tuple[list[int], Text]:
        """``(ids, tail)``: the longest prefix of ``encode(text)`` that no continuation of the
        text can change, and the rest of the text; see ``bytepiece.tokenizer.stable``."""
        from .stable import encode_stable

        return encode_stable(self._core, self._lattice, text)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model in the original JSON format (atomic)."""
        self.model.save(path)

    def to_sentencepiece(self, path: str | os.PathLike, *, style: str = "byte_fallback") -> Path:
        """Export as a sentencepiece Unigram ``ModelProto``; returns the path written.

        ``style="byte_fallback"`` (readable pieces, ``<0xNN>`` byte tokens for the rest) or
        ``"byte_level"`` (every piece kept, bytes mapped to characters). Loading the file needs
        the ``sentencepiece`` extra; docs/interop.md lists where the ids can differ."""
        from ..interop.sentencepiece import export_sentencepiece

        return export_sentencepiece(self, path, style=style)  # type: ignore[arg-type]

    def to_hf(self, path: str | os.PathLike, *, style: str = "byte_level") -> Path:
        """Export as an HF ``tokenizer.json`` Unigram model; returns the path written.

        The default ``style="byte_level"`` keeps every piece (bytes mapped to characters, as in
        GPT-2) and gives exactly bytepiece's ids; ``"byte_fallback"`` gives readable tokens with
        ``<0xNN>`` byte fallback, at the cost of pieces that are not valid UTF-8. Loading needs
        the ``hf`` extra."""
        from ..interop.hf import export_hf

        return export_hf(self, path, style=style)  # type: ignore[arg-type]


def _codec_errors(errors: str) -> str:
    import codecs

    if not isinstance(errors, str):
        raise InputError(f"errors must be a codec error handler name such as 'replace' or 'strict', got {errors!r}")
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise InputError(f"errors must be a codec error handler such as 'replace' or 'strict', got {errors!r}") from None
    return errors


def _restore(model: Model, normalization: str) -> Tokenizer:
    return Tokenizer(model, normalization=normalization)  # type: ignore[arg-type]


def _restore_file(path: str, sha256: str, normalization: str, special_tokens: tuple[str, ...]) -> Tokenizer:
    """Unpickle a tokenizer pickled by reference: the model file is loaded the usual way and must
    still hold the model (pieces, counts, special tokens) the pickled tokenizer had."""
    what = f"cannot unpickle the Tokenizer of {path}"
    fix = ("to send the model itself, pickle Tokenizer(tok.model, normalization=tok.normalization) "
           "instead (any process can unpickle it, at the size of the model)")
    try:
        tok = Tokenizer(path, normalization=normalization, special_tokens=special_tokens)  # type: ignore[arg-type]
    except BytePieceError as e:
        raise ModelFormatError(f"{what}: {e}; the model file must be at the same path wherever the tokenizer is "
                               f"unpickled, or {fix}") from e
    now = content_sha256(tok.model)
    if now != sha256 or tok.special_tokens != tuple(special_tokens):
        changed = (f"content sha256 {sha256[:16]}... then, {now[:16]}... now" if now != sha256 else
                   f"special tokens {list(special_tokens)} then, {list(tok.special_tokens)} now")
        raise ModelFormatError(f"{what}: the model in that file changed since the tokenizer was pickled ({changed}), "
                               f"so the ids would change; load the new model, or {fix}")
    return tok
