"""The engine task of corpus encoding: one range of the input in, one or more shard parts out.

A task is planned by the client (:func:`plan_tasks`) and receives only its description (files
and byte ranges, see :class:`~bytepiece.corpus.Shard`); it reads its documents itself, encodes
them and writes them to the run's staging directory (which must be visible to every worker:
local disk for local runs, a shared file system for a cluster). What travels back is a few
counters and the part files' names and hashes.

A task stops at its next batch when the staging directory has disappeared: that is how the
client cancels running tasks after an error or Ctrl-C, on threads and on a cluster alike.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..corpus import DocBatch, Shard, plan_shards, read_shard
from ..corpus.shards import MIN_SHARD_BYTES
from ..corpus.sources import Source
from ..errors import InputError
from .batches import PendingBatch, encode_doc_batch, kernel_tables, read_ahead, special_doc_batch, start_doc_batch
from .manifest import ShardEntry
from .sink import ShardSink


#: batches larger than this (a huge document) are finished before the next one starts
PIPELINE_MAX_BYTES = 8 << 20


class EncodeCancelled(InputError):
    """The run this task belongs to was stopped (its staging directory is gone)."""


@dataclass(frozen=True)
class EncodeTask:
    """Consecutive input pieces whose documents go, in order, to the same part files."""

    index: int
    pieces: tuple[Shard, ...]
    size: int  # input bytes (on disk) it covers

    @property
    def source(self) -> str:
        """What error messages name (the engine reports a failed task by its ``source``)."""
        first = self.pieces[0].source.label if self.pieces else "?"
        return first if len(self.pieces) == 1 else f"{first} (+{len(self.pieces) - 1} more inputs)"


@dataclass(frozen=True)
class EncodeJob:
    """Options every task shares (small: sent with each task)."""

    staging: str  # absolute path of the run's staging directory
    shard_tokens: int | None  # tokens per part; None: one part per task (single-file output)
    alpha: float
    seed: int
    bos: int  # id added before each document, -1: none
    eos: int
    errors: str
    normalize: bool
    batch_bytes: int
    threads: int  # kernel threads per task (the local engine shares them among its tasks)
    read_ahead: bool  # read the next batch on a thread of its own (local runs; a Dask task stays on one core)
    metadata_json: str  # JSON of the metadata every part's sidecar carries
    allowed_special: tuple[str, ...] = ()  # special tokens matched in the text (none: plain encoding)


class TaskResult(NamedTuple):
    parts: list[ShardEntry]  # named as staged
    input_bytes: int  # input bytes read (progress)
    texts: int  # lines or records read
    documents: int
    text_bytes: int  # UTF-8 bytes of the documents after normalization
    invalid_utf8: int
    seconds: float


def plan_tasks(sources: Sequence[Source], target_bytes: int, *, single: bool = False) -> list[EncodeTask]:
    """Tasks of about ``target_bytes`` input bytes: large uncompressed inputs are cut into byte
    ranges (Parquet files between row groups), small inputs are grouped in order. A function of
    the inputs and ``target_bytes`` only, so every engine runs the same tasks. ``single``: one
    task for everything (single-file output)."""
    pieces = plan_shards(sources, max(MIN_SHARD_BYTES, target_bytes))
    if single:
        return [EncodeTask(0, tuple(pieces), sum(p.size for p in pieces))]
    tasks: list[EncodeTask] = []
    group: list[Shard] = []
    size = 0
    for piece in pieces:
        if group and size + piece.size > target_bytes:
            tasks.append(EncodeTask(len(tasks), tuple(group), size))
            group, size = [], 0
        group.append(piece)
        size += piece.size
    if group:
        tasks.append(EncodeTask(len(tasks), tuple(group), size))
    return tasks


def _batches(task: EncodeTask, job: EncodeJob) -> Iterator[DocBatch]:
    for piece in task.pieces:
        yield from read_shard(piece, purpose="encode", errors=job.errors, normalize=job.normalize,
                              batch_bytes=job.batch_bytes)


def encode_task(task: EncodeTask, job: EncodeJob, tokenizer: Any,
                report: Callable[[int], None] | None = None) -> TaskResult:
    """Encode the task's documents into parts in ``job.staging``; ``report(n)`` (local runs)
    hears of every batch's input bytes as it is read."""
    t0 = time.perf_counter()
    staging = Path(job.staging)
    tables = kernel_tables(tokenizer, job.alpha)
    sink = ShardSink(staging, task.index, tokenizer, limit=job.shard_tokens, metadata=json.loads(job.metadata_json))
    input_bytes = texts = documents = text_bytes = invalid = 0
    batches = read_ahead(_batches(task, job)) if job.read_ahead else _batches(task, job)
    pending: deque[PendingBatch] = deque()
    try:
        for batch in batches:
            if not os.path.isdir(staging):
                raise EncodeCancelled(f"encoding of {task.source} stopped: the run was cancelled")
            if batch.n_documents and job.allowed_special:
                sink.write(*special_doc_batch(tokenizer, batch, set(job.allowed_special), alpha=job.alpha, seed=job.seed,
                                              bos=job.bos, eos=job.eos, slot_dtype=tables.slot_dtype))
            elif batch.n_documents:
                pending.append(start_doc_batch(tables, batch, seed=job.seed, bos=job.bos, eos=job.eos,
                                               threads=job.threads))
                # finish the previous batch while this one encodes; a large batch (a huge
                # document) is finished at once, so that two of them are never held together
                while len(pending) > 1 or (pending and len(batch.data) > PIPELINE_MAX_BYTES):
                    sink.write(*pending.popleft().finish())
            input_bytes += batch.consumed
            texts += batch.texts
            documents += batch.n_documents
            text_bytes += len(batch.data)
            invalid += batch.invalid_utf8
            if report is not None:
                report(batch.consumed)
        while pending:
            sink.write(*pending.popleft().finish())
        if job.shard_tokens is None:
            sink.keep_empty()
        parts = sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return TaskResult(parts, input_bytes, texts, documents, text_bytes, invalid, time.perf_counter() - t0)


_warm = False


def warm_up_encoding() -> None:
    """Compile (or load from numba's cache) the kernels tasks use, once per process."""
    global _warm
    if _warm:
        return
    import numpy as np

    from ..tokenizer import Tokenizer

    tokenizer = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"ab": 5})
    data = b"abab\nab"
    batch = DocBatch(data, np.array([0, 4, len(data)], np.int64), np.array([0, 5], np.int64), 0, len(data), 2)
    for alpha in (-1.0, 0.5):
        encode_doc_batch(kernel_tables(tokenizer, alpha), batch, seed=1, bos=1, eos=2)
    _warm = True
