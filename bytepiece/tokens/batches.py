"""Encoding a batch of corpus documents, and reading ahead while a batch is encoded.

The reader yields :class:`~bytepiece.corpus.DocBatch` es that are already NFC UTF-8 with document
offsets, so a batch goes straight to the kernel, without the per-text Python work of
``Tokenizer.encode_batch``. Each document draws its random numbers (when sampling) from a stream
named by its input and its position there (:func:`document_streams`), never by its place in a
batch, so a sampled corpus is the same for any batch size, shard size, thread count or cluster.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from ..corpus import DocBatch
from ..engine.pool import thread_pool

#: inputs up to 2**40 bytes (or rows) each keep every (input, position) stream distinct
POSITION_BITS = 40
#: kernel blocks per thread and batch: a free thread takes the next block, so threads finish together
BLOCKS_PER_THREAD = 4
#: below this many bytes a batch is encoded on the calling thread (splitting costs more than it saves)
MIN_SPLIT_BYTES = 64 << 10

T = TypeVar("T")


class KernelTables(NamedTuple):
    """What the encode kernels need from a tokenizer for one ``alpha`` (arrays shared, not copied)."""

    base_check: npt.NDArray[np.int32]
    pair: npt.NDArray[np.int32]
    piece: npt.NDArray[np.int32]
    values: npt.NDArray[np.float64]
    mode: int
    max_len: int
    alpha: float  # read by the log-domain sampler (0 for Viterbi)
    slot_dtype: type  # np.uint16 when every id fits in 16 bits, else np.int32


def kernel_tables(tokenizer, alpha: float) -> KernelTables:
    """The trie and per-cell values of ``tokenizer`` for Viterbi (``alpha < 0``) or sampling."""
    trie = tokenizer._encoder
    if alpha < 0:
        from ..kernels.encode import VITERBI

        mode, values = VITERBI, tokenizer._cell_scores
    else:
        mode, values = tokenizer._sampler(alpha)
    slot = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32
    return KernelTables(trie.base_check, tokenizer._pair, trie.piece, values, mode, trie.max_depth, max(alpha, 0.0), slot)


def document_streams(batch: DocBatch) -> npt.NDArray[np.uint64]:
    """Random stream of each document: ``input index * 2**40 + position`` (byte offset of the
    document in its decompressed input, or its Parquet row)."""
    base = np.uint64((batch.source_index << POSITION_BITS) & 0xFFFFFFFFFFFFFFFF)
    return batch.positions.astype(np.uint64) + base


class PendingBatch:
    """A batch whose kernel blocks were handed to the kernel pool; ``finish`` waits for them and
    packs the ids. Starting the next batch before finishing this one keeps the kernel threads
    busy while this thread packs and writes (a single task would otherwise leave them idle
    between batches)."""

    def __init__(self, tables: KernelTables, batch: DocBatch, out: np.ndarray, counts: np.ndarray, jobs: list,
                 bos: int, eos: int) -> None:
        self.tables, self.batch, self.out, self.counts, self.jobs = tables, batch, out, counts, jobs
        self.bos, self.eos = bos, eos

    def finish(self) -> tuple[npt.NDArray[np.unsignedinteger | np.int32], npt.NDArray[np.int64]]:
        """(flat ids as ``tables.slot_dtype``, ``n + 1`` token offsets), ``bos``/``eos`` added."""
        for job in self.jobs:
            job.result()
        counts, bos, eos = self.counts, self.bos, self.eos
        token_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts + ((bos >= 0) + (eos >= 0)), out=token_offsets[1:])
        flat: np.ndarray = np.empty(int(token_offsets[-1]), dtype=self.tables.slot_dtype)
        from ..kernels import streams as S

        S.gather_slots(self.out, self.batch.offsets, counts, bos, eos, token_offsets, flat)
        return flat, token_offsets


def start_doc_batch(tables: KernelTables, batch: DocBatch, *, seed: int, bos: int, eos: int,
                    threads: int = 1) -> PendingBatch:
    """Encode the batch's documents: with ``threads > 1`` in blocks of about equal bytes on this
    process's kernel pool (the kernels release the GIL), else here and now."""
    from ..kernels import streams as S  # numba is loaded with the first batch the kernels encode

    buf = np.frombuffer(batch.data, dtype=np.uint8)
    offsets = batch.offsets
    n_docs = len(offsets) - 1
    # one slot per byte (a document has at most as many tokens as bytes): 16-bit slots when
    # every id fits, which halves the largest array of a batch
    out: np.ndarray = np.empty(max(len(buf), 1), dtype=tables.slot_dtype)
    counts = np.zeros(n_docs, dtype=np.int64)
    streams = document_streams(batch)
    t = tables
    args: tuple[Any, ...] = (t.base_check, t.pair, t.piece, t.values, t.mode, t.max_len, float(t.alpha), buf, offsets)
    seed = np.uint64(seed)
    jobs = []
    if threads > 1 and n_docs > 1 and len(buf) >= MIN_SPLIT_BYTES:
        n_blocks = min(n_docs, threads * BLOCKS_PER_THREAD)
        cuts = np.searchsorted(offsets, np.linspace(0, offsets[-1], n_blocks + 1)[1:-1], side="right")
        bounds = np.unique(np.concatenate(([0], cuts, [n_docs])))
        pool = thread_pool(threads, purpose="bytepiece-kernels")
        jobs = [pool.submit(functools.partial(S.encode_streams, *args, int(lo), int(hi), seed, streams, out, counts))
                for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    elif n_docs:
        S.encode_streams(*args, 0, n_docs, seed, streams, out, counts)
    return PendingBatch(tables, batch, out, counts, jobs, bos, eos)


def encode_doc_batch(tables: KernelTables, batch: DocBatch, *, seed: int, bos: int, eos: int,
                     threads: int = 1) -> tuple[npt.NDArray[np.unsignedinteger | np.int32], npt.NDArray[np.int64]]:
    """(flat ids, ``n + 1`` token offsets) of the batch's documents (see :class:`PendingBatch`)."""
    return start_doc_batch(tables, batch, seed=seed, bos=bos, eos=eos, threads=threads).finish()


def special_doc_batch(tokenizer, batch: DocBatch, allowed, *, alpha: float, seed: int, bos: int, eos: int,
                      slot_dtype: type) -> tuple[np.ndarray, npt.NDArray[np.int64]]:
    """(flat ids, ``n + 1`` token offsets) of the batch's documents with the special tokens
    ``allowed`` matched in the text (``Tokenizer`` does the matching). Sampling keeps the
    per-document streams of :func:`document_streams`, so the ids do not depend on the plan."""
    offsets = batch.offsets.tolist()
    docs = [batch.data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    if alpha < 0:
        flat, token_offsets = tokenizer.encode_batch(docs, allowed_special=allowed, add_bos=bos >= 0, add_eos=eos >= 0,
                                                     return_flat=True, num_threads=1)
        return np.asarray(flat).astype(slot_dtype), np.asarray(token_offsets, dtype=np.int64)
    lists = [tokenizer.encode(doc, bos >= 0, eos >= 0, alpha, _stream_seed(seed, int(stream)), allowed_special=allowed)
             for doc, stream in zip(docs, document_streams(batch).tolist())]
    token_offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(ids) for ids in lists], out=token_offsets[1:])
    flat = np.fromiter((i for ids in lists for i in ids), dtype=np.int64, count=int(token_offsets[-1]))
    return flat.astype(slot_dtype), token_offsets


def _stream_seed(seed: int, stream: int) -> int:
    """A seed for one document's stream (the tokenizer hashes it further)."""
    return (seed * 0x9E3779B97F4A7C15 + stream) & 0xFFFFFFFFFFFFFFFF


_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """``items``, produced by a background thread up to ``depth`` ahead, so that reading and
    parsing (Python, holding the GIL) overlap with encoding (kernels, not holding it). Errors
    of the producer are raised here; closing the generator stops the producer."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except BaseException as e:  # handed to the consumer, raised there
            slots.put((_DONE, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="bytepiece-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for a free slot
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
