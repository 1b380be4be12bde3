"""Encoding a batch of texts (``Tokenizer.encode_batch``): joining them into one UTF-8 buffer,
encoding blocks of it on threads, and turning the flat ids back into lists."""

from __future__ import annotations

import gc
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import coldstart as _cold
from .errors import InputError
from .normalize import NFC, to_utf8
from .options import Seed, bad_batch_item, kernel_seed

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

NO_SEED = np.uint64(0)  # what deterministic calls pass for the seed
# Batches smaller than this (characters) run on the calling thread: handing them to a pool
# costs more than it saves.
SMALL_BATCH_CHARS = 1 << 15
Flat = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]

_nfc = unicodedata.normalize
_is_nfc = unicodedata.is_normalized

_id_objects: npt.NDArray[np.object_] = np.empty(0, dtype=object)


def shared_ids(n: int) -> npt.NDArray[np.object_]:
    """An object array whose item i is the int i, shared by all tokenizers.

    Lists made by ``take(ids).tolist()`` hold references to these ints instead of a fresh int
    object per token (ids above 256 are not cached by CPython), which halves the cost of list
    output and of freeing it."""
    global _id_objects
    table = _id_objects
    if table.shape[0] < n:
        table = np.array(range(n), dtype=object)
        _id_objects = table
    return table


def id_lists(flat: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64], vocab_size: int) -> list[list[int]]:
    """``[flat[offsets[i]:offsets[i + 1]] for each i]`` as lists of ints: one ``take`` and one
    ``tolist`` for the whole batch, then list slices (no numpy call per document).

    The cyclic garbage collector is paused meanwhile: every 700 new lists it would otherwise
    scan the young objects, and with 30k short documents per MB (code) that doubled the cost.
    Lists of ints cannot form cycles, so nothing is missed."""
    ids = shared_ids(vocab_size).take(flat).tolist()
    bounds = offsets.tolist()
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return [ids[i:j] for i, j in zip(bounds, bounds[1:])]
    finally:
        if paused:
            gc.enable()


def join_texts(texts: list, normalization: str, first_index: int = 0) -> tuple[bytes, npt.NDArray[np.int64]]:
    """The normalized UTF-8 of all texts, concatenated, and the byte offsets of each.

    Measured per MB of lines, the cost is in the per-text Python calls, so: a batch whose first
    text is ASCII is joined and checked as a whole (code and most English need nothing else);
    otherwise each text is encoded in one comprehension, normalized only when it is neither
    ASCII nor already NFC. Anything unusual (a non-text item, a lone surrogate, invalid UTF-8)
    takes the careful per-text path, which also names a bad item (``texts`` being items
    ``first_index`` on of the caller's batch)."""
    n = len(texts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n == 0:
        return b"", offsets
    first = texts[0]
    kind = type(first)
    try:
        if (kind is str or kind is bytes) and first.isascii():
            joined: Any = ("" if kind is str else b"").join(texts)
            if joined.isascii():
                np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=n), out=offsets[1:])
                if offsets[-1] == len(joined):
                    return (joined.encode("ascii") if kind is str else joined), offsets
        if kind is str:
            if normalization == NFC:
                datas = [t.encode() if t.isascii() else _nfc("NFC", t).encode() for t in texts]
            else:
                datas = [t.encode() for t in texts]
        elif kind is bytes:
            if normalization == NFC:
                datas = [b if b.isascii() or _is_nfc("NFC", b.decode()) else _nfc("NFC", b.decode()).encode()
                         for b in texts]
            else:
                datas = texts
        else:
            return _join_each(texts, offsets, normalization, first_index)
        data = b"".join(datas)
        np.cumsum(np.fromiter(map(len, datas), dtype=np.int64, count=n), out=offsets[1:])
    except (TypeError, AttributeError, ValueError):  # not all str/bytes, surrogates, invalid UTF-8
        return _join_each(texts, offsets, normalization, first_index)
    if offsets[-1] != len(data):  # buffers whose len() is not their size in bytes
        return _join_each(texts, offsets, normalization, first_index)
    return data, offsets


def _join_each(texts: list, offsets: npt.NDArray[np.int64], normalization: str, first_index: int
               ) -> tuple[bytes, npt.NDArray[np.int64]]:
    datas = []
    for i, text in enumerate(texts):
        try:
            datas.append(to_utf8(text, normalization))
        except InputError as e:
            if not isinstance(text, (str, bytes, bytearray, memoryview)):
                raise bad_batch_item(texts, first_index) from e
            raise InputError(f"encode_batch: item {first_index + i}: {e}") from e
    np.cumsum(np.fromiter(map(len, datas), dtype=np.int64, count=len(datas)), out=offsets[1:])
    return b"".join(datas), offsets


def encode_flat(tok: Tokenizer, texts: list, *, alpha: float, seed: Seed, bos: int, eos: int, threads: int) -> Flat:
    """All ids of ``texts`` and their ``len(texts) + 1`` token offsets; ``bos``/``eos`` are the
    ids to put around each document, or -1 for none."""
    seed64 = kernel_seed(seed) if alpha >= 0 else NO_SEED
    if threads > 1 and len(texts) > 1:
        try:
            lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        except TypeError:
            raise bad_batch_item(texts) from None
        if lengths.sum() >= SMALL_BATCH_CHARS:
            return _encode_overlapped(tok, texts, lengths, alpha, seed64, bos, eos, threads)
    return _encode_block(tok, texts, alpha, seed64, 0, bos, eos)


def _encode_block(tok: Tokenizer, texts: list, alpha: float, seed64: np.uint64, doc_base: int, bos: int,
                  eos: int) -> Flat:
    """One block of a batch (on a worker thread, or the only one)."""
    data, offsets = join_texts(texts, tok.normalization, doc_base)
    if alpha < 0 and _cold.kernel_module is None and _cold.python_covers(len(data)):
        return _python_block(tok, data, offsets, bos, eos)
    K = _cold.kernel_module or _cold.kernels()
    if alpha < 0:
        mode, values = K.VITERBI, tok._cell_scores
    else:
        mode, values = tok._sampler(alpha)
    return K.encode_documents(tok._bc, tok._pair, tok._piece_of_cell, values, mode, tok._encoder.max_depth,
                              max(alpha, 0.0), np.frombuffer(data, dtype=np.uint8), offsets, seed64, doc_base, bos,
                              eos)


def _python_block(tok: Tokenizer, data: bytes, offsets: npt.NDArray[np.int64], bos: int, eos: int) -> Flat:
    views = tok._views
    flat: list[int] = []
    token_offsets = [0]
    bounds = offsets.tolist()
    for a, b in zip(bounds, bounds[1:]):
        if bos >= 0:
            flat.append(bos)
        flat.extend(_cold.viterbi_ids(*views, data[a:b]))
        if eos >= 0:
            flat.append(eos)
        token_offsets.append(len(flat))
    return np.array(flat, dtype=np.int32), np.array(token_offsets, dtype=np.int64)


def _encode_overlapped(tok: Tokenizer, texts: list, lengths: npt.NDArray[np.int64], alpha: float,
                       seed64: np.uint64, bos: int, eos: int, threads: int) -> Flat:
    """Several threads: each job normalizes and joins its own block of texts, then encodes it.
    Normalizing is Python (it holds the GIL) and encoding is not (the kernels release it), so
    one thread's normalizing overlaps another's encoding instead of running before all of it."""
    from .engine.pool import thread_pool

    if alpha >= 0:
        tok._sampler(alpha)  # build the sampling table once, before the threads need it
    else:
        _cold.kernels()
    # About 8 blocks per thread of equal characters: a free thread takes the next block, so
    # the threads finish together even though bytes per character vary.
    chars = np.cumsum(lengths)
    n_blocks = min(len(texts), 8 * threads)
    cuts = np.unique(np.searchsorted(chars, np.linspace(0, chars[-1], n_blocks + 1)[1:-1]))
    bounds = [0, *[int(c) + 1 for c in cuts if c + 1 < len(texts)], len(texts)]
    pool = thread_pool(threads)
    jobs = [pool.submit(_encode_block, tok, texts[lo:hi], alpha, seed64, lo, bos, eos)
            for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    flats, token_offsets, shift = [], [np.zeros(1, np.int64)], 0
    for job in jobs:
        flat, offs = job.result()
        flats.append(flat)
        token_offsets.append(offs[1:] + shift)
        shift += len(flat)
    return np.concatenate(flats), np.concatenate(token_offsets)
