"""Batches of corpus documents through the document encoder, in order, overlapped.

The corpus reader yields :class:`~bytepiece.corpus.DocBatch` es that are already normalized
UTF-8 with document offsets, so a batch goes straight to the tokenizer's
:class:`~bytepiece.tokenizer.DocumentEncoder` (the one pipeline every encode path shares) without
per-text Python work. Two things overlap here: the next batch is read on a thread of its own
(:func:`read_ahead`; reading and parsing hold the GIL, the kernels do not), and a batch is
handed to the kernel threads before the previous one is collected (:func:`encode_batches`).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ..corpus import DocBatch
from ..tokenizer import DocumentEncoder
from ..tokenizer.documents import Pending

#: batches larger than this (a huge document) are collected before the next one starts
PIPELINE_MAX_BYTES = 8 << 20

T = TypeVar("T")


@dataclass
class EncodedBatch:
    """One batch of documents, encoded: document i is ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: npt.NDArray[np.integer]  # in the dtype asked for (the token file's)
    offsets: npt.NDArray[np.int64]
    input_bytes: int  # input consumed (progress)
    texts: int  # input lines or records read
    text_bytes: int  # UTF-8 bytes encoded (after normalization)
    invalid_utf8: int

    @property
    def n_documents(self) -> int:
        return len(self.offsets) - 1


def encode_batches(batches: Iterable[DocBatch], encoder: DocumentEncoder, *, first_index: int = 0,
                   dtype: np.dtype | type = np.int32,
                   more_waiting: Callable[[], bool] | None = None) -> Iterator[EncodedBatch]:
    """Every batch encoded, in order; document k of the input (counting from ``first_index``)
    draws from the seed's stream k when sampling. A batch is given out once the next one has
    started, except where ``more_waiting`` (an input read as it arrives) says that the next
    would have to wait for input: then at once, so that a line typed at a terminal is answered."""
    pending: deque[tuple[Pending, DocBatch]] = deque()
    index = first_index

    def collect() -> EncodedBatch:
        job, batch = pending.popleft()
        ids, offsets = job.result()
        return EncodedBatch(ids.astype(dtype, copy=False), offsets, batch.consumed, batch.texts, len(batch.data),
                            batch.invalid_utf8)

    for batch in batches:
        pending.append((encoder.start(batch.data, batch.offsets, index), batch))
        index += batch.n_documents
        # collect the previous batch while this one encodes; a large batch (a huge document)
        # is collected at once, so that two of them are never held together
        while len(pending) > 1 or (pending and len(batch.data) > PIPELINE_MAX_BYTES):
            yield collect()
        if pending and more_waiting is not None and not more_waiting():
            yield collect()
    while pending:
        yield collect()


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
