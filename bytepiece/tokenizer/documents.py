"""The one document encoder: documents in, one flat array of ids and token offsets out.

Every path that encodes documents goes through :class:`DocumentEncoder`: ``Tokenizer.encode``
and ``encode_batch``, corpus encoding (each batch of each shard, on threads or on Dask
workers) and the command line. What a document becomes is therefore decided here, once:

- special tokens the caller allows are matched in the normalized text and become their ids
  (:mod:`.specials`); the text around them is segmented on its own;
- ``<bos>`` / ``<eos>`` go around every document;
- sampling draws the random numbers of document i from the stream of its global index in the
  input, ``(seed, first_index + i)``: the same seed gives the same ids whichever API, thread
  count, batch, shard or cluster encodes the document;
- a batch is spread over threads in blocks of documents of about equal bytes (the kernels
  release the GIL); the result never depends on the number of threads.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.interrupts import call_interruptibly
from ..engine.pool import thread_pool
from ..normalize import bad_batch_item, join_texts
from ..options import NO_SEED, Seed, alpha_value, kernel_seed
from ..vocab import BOS_ID, EOS_ID
from . import coldstart
from .core import Segmenter
from .specials import AllowedSpecial, segments

Flat = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]
#: kernel blocks per thread: a free thread takes the next block, so threads finish together
BLOCKS_PER_THREAD = 4
#: below this many bytes a batch is encoded on the calling thread (splitting costs more than it saves)
MIN_SPLIT_BYTES = 32 << 10
#: from this many bytes, a batch encoded on the calling thread is encoded with signal handlers
#: that a Ctrl-C cannot crash (``engine.interrupts``; wrapping them costs about 40 us)
KERNEL_SAFE_MIN_BYTES = 256 << 10



@dataclass(frozen=True)
class EncodeOptions:
    """What every document of a call becomes: Viterbi (``alpha < 0``) or a sample, the
    kernels' 64-bit ``seed``, the ``bos`` / ``eos`` ids around it (-1: none), and the special
    tokens matched in its text."""

    alpha: float = -1.0
    seed: np.uint64 = NO_SEED
    bos: int = -1
    eos: int = -1
    allowed: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def make(cls, core: Segmenter, *, alpha: Any = -1.0, seed: Seed = None, add_bos: bool = False,
             add_eos: bool = False, allowed_special: AllowedSpecial = ()) -> EncodeOptions:
        """Options checked and converted the way every encode method takes them."""
        value = alpha_value(alpha)
        return cls(value, kernel_seed(seed) if value >= 0 else NO_SEED, BOS_ID if add_bos else -1,
                   EOS_ID if add_eos else -1, core.specials.resolve(allowed_special) if allowed_special else frozenset())

    @property
    def sampling(self) -> bool:
        return self.alpha >= 0


class Pending:
    """Documents handed to the kernel threads; :meth:`result` waits and joins the blocks.
    Starting the next batch before waiting keeps the kernel threads busy meanwhile."""

    def __init__(self, parts: list[Future] | None = None, done: Flat | None = None) -> None:
        self._parts, self._done = parts or [], done

    def result(self) -> Flat:
        if self._done is None:
            flats, token_offsets, shift = [], [np.zeros(1, np.int64)], 0
            for part in self._parts:
                flat, offs = part.result()
                flats.append(flat)
                token_offsets.append(offs[1:] + shift)
                shift += len(flat)
            self._done = (np.concatenate(flats) if flats else np.zeros(0, np.int32), np.concatenate(token_offsets))
        return self._done


class DocumentEncoder:
    """Encodes documents with one tokenizer core and one set of :class:`EncodeOptions`, on
    ``threads`` threads (see the module docstring)."""

    def __init__(self, core: Segmenter, options: EncodeOptions, *, threads: int = 1) -> None:
        self.core = core
        self.options = options
        self.threads = threads
        if options.sampling:
            core.tables(options.alpha)  # build the sampling table once, before threads need it

    # -- documents as bytes ---------------------------------------------------------------------
    def encode(self, data: bytes, offsets: npt.NDArray[np.int64], first_index: int = 0) -> Flat:
        """(ids, ``n + 1`` token offsets) of the documents ``data[offsets[i]:offsets[i + 1]]``
        (normalized UTF-8); document i is document ``first_index + i`` of the input."""
        return self.start(data, offsets, first_index).result()

    def start(self, data: bytes, offsets: npt.NDArray[np.int64], first_index: int = 0) -> Pending:
        """:meth:`encode`, returning before the kernel threads are done."""
        n_docs = len(offsets) - 1
        if n_docs <= 0:
            return Pending(done=(np.zeros(0, np.int32), np.zeros(1, np.int64)))
        if self.core.has_python_path(self.options.alpha) and coldstart.python_covers(len(data)):
            return Pending(done=self._python(data, offsets, first_index))
        buf = np.frombuffer(data, dtype=np.uint8)
        if self.threads <= 1 or n_docs == 1 or len(data) < MIN_SPLIT_BYTES:
            if len(data) >= KERNEL_SAFE_MIN_BYTES:
                return Pending(done=call_interruptibly(self._block, buf, offsets, 0, n_docs, first_index))
            return Pending(done=self._block(buf, offsets, 0, n_docs, first_index))
        coldstart.kernels()
        n_blocks = min(n_docs, self.threads * BLOCKS_PER_THREAD)
        cuts = np.searchsorted(offsets, np.linspace(offsets[0], offsets[-1], n_blocks + 1)[1:-1], side="right")
        bounds = np.unique(np.concatenate(([0], cuts, [n_docs])))
        pool = thread_pool(self.threads, purpose="bytepiece-kernels")
        return Pending([pool.submit(self._block, buf, offsets, int(lo), int(hi), first_index)
                        for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo])

    def _block(self, buf: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], lo: int, hi: int,
               first_index: int) -> Flat:
        """Documents lo..hi-1 through the kernel."""
        o = self.options
        doc_offsets = offsets[lo:hi + 1]
        if o.allowed:
            matches = self.core.specials.find(buf[doc_offsets[0]:doc_offsets[-1]].tobytes(), o.allowed,
                                              doc_offsets - doc_offsets[0])
            if len(matches):
                shift = int(doc_offsets[0])
                matches.starts += shift
                matches.ends += shift
                bounds, doc_segments, special = segments(doc_offsets, matches)
                return self.core.segment_documents(buf, bounds, alpha=o.alpha, seed=o.seed, doc_segments=doc_segments,
                                                   special=special, doc_base=first_index + lo, bos=o.bos, eos=o.eos)
        return self.core.segment_documents(buf, np.ascontiguousarray(doc_offsets), alpha=o.alpha, seed=o.seed,
                                           doc_base=first_index + lo, bos=o.bos, eos=o.eos)

    def _python(self, data: bytes, offsets: npt.NDArray[np.int64], first_index: int) -> Flat:
        """The documents in plain Python, for the first kilobytes of a process (``coldstart``)."""
        o = self.options
        matches = self.core.specials.find(data, o.allowed, offsets) if o.allowed else None
        if matches:
            bounds, doc_segments, special = segments(offsets, matches)
            return self.core.python_documents(data, bounds.tolist(), doc_segments.tolist(), special.tolist(), o.bos,
                                              o.eos, o.alpha, o.seed, first_index)
        bounds = offsets.tolist()
        return self.core.python_documents(data, bounds, list(range(len(bounds))), None, o.bos, o.eos, o.alpha,
                                          o.seed, first_index)

    # -- documents as Python texts ------------------------------------------------------------------
    def encode_texts(self, texts: list, first_index: int = 0) -> Flat:
        """:meth:`encode` of texts (``str``, or ``bytes`` holding UTF-8), normalized here. With
        several threads each block is normalized and joined on the thread that encodes it, so
        one block's normalization (Python, holding the GIL) overlaps another's kernel."""
        if self.threads > 1 and len(texts) > 1:
            try:
                lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
            except TypeError:
                raise bad_batch_item(texts) from None
            if lengths.sum() >= MIN_SPLIT_BYTES:
                return self._texts_overlapped(texts, lengths, first_index)
        data, offsets = join_texts(texts, self.core.normalization, first_index)
        return self.encode(data, offsets, first_index)

    def _texts_overlapped(self, texts: list, lengths: npt.NDArray[np.int64], first_index: int) -> Flat:
        coldstart.kernels()
        single = DocumentEncoder(self.core, self.options, threads=1)

        def block(lo: int, hi: int) -> Flat:
            data, offsets = join_texts(texts[lo:hi], self.core.normalization, first_index + lo)
            return single.encode(data, offsets, first_index + lo)

        # About 8 blocks per thread of equal characters: a free thread takes the next block, so
        # the threads finish together even though bytes per character vary.
        chars = np.cumsum(lengths)
        n_blocks = min(len(texts), 8 * self.threads)
        cuts = np.unique(np.searchsorted(chars, np.linspace(0, chars[-1], n_blocks + 1)[1:-1]))
        bounds = [0, *[int(c) + 1 for c in cuts if c + 1 < len(texts)], len(texts)]
        pool = thread_pool(self.threads)
        return Pending([pool.submit(block, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]).result()
