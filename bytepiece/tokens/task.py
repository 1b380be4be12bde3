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

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..corpus import DocBatch, Shard, plan_shards, read_shard
from ..corpus.shards import MIN_SHARD_BYTES
from ..corpus.sources import Source
from ..errors import InputError
from ..tokenizer import DocumentEncoder, Tokenizer
from .manifest import ShardEntry
from .pipeline import encode_batches, read_ahead
from .sink import ShardSink


class EncodeCancelled(InputError):
    """The run this task belongs to was stopped (its staging directory is gone)."""


@dataclass(frozen=True)
class EncodeTask:
    """Consecutive input pieces whose documents go, in order, to the same part files."""

    index: int
    pieces: tuple[Shard, ...]
    size: int  # input bytes (on disk) it covers
    first_document: int = 0  # index of its first document in the whole input (the sampling streams)

    @property
    def source(self) -> str:
        """What error messages name (the engine reports a failed task by its ``source``)."""
        first = self.pieces[0].source.label if self.pieces else "?"
        return first if len(self.pieces) == 1 else f"{first} (+{len(self.pieces) - 1} more inputs)"


@dataclass(frozen=True)
class EncodeJob:
    """Options every task shares (small: sent with each task)."""

    staging: str  # absolute path of the run's staging directory
    shard_tokens: int  # tokens per part
    alpha: float
    seed: int | None  # as the user gives it (the tokenizer hashes it for the kernels)
    add_bos: bool
    add_eos: bool
    errors: str
    normalize: bool
    batch_bytes: int
    threads: int  # kernel threads per task (the local engine shares them among its tasks)
    read_ahead: bool  # read the next batch on a thread of its own (local runs; a Dask task stays on one core)
    metadata_json: str  # JSON of the metadata every part's sidecar carries
    allowed_special: tuple[str, ...] = ()  # special tokens matched in the text (none: plain encoding)
    layout: str = "bytepiece"  # the token-file layout of the parts (binfile.LAYOUTS)

    def encoder(self, tokenizer: Tokenizer) -> DocumentEncoder:
        return tokenizer.document_encoder(alpha=self.alpha, seed=self.seed, add_bos=self.add_bos, add_eos=self.add_eos,
                                          allowed_special=self.allowed_special, num_threads=self.threads)


class TaskResult(NamedTuple):
    parts: list[ShardEntry]  # named as staged
    input_bytes: int  # input bytes read (progress)
    texts: int  # lines or records read
    documents: int
    text_bytes: int  # UTF-8 bytes of the documents after normalization
    invalid_utf8: int
    seconds: float


def plan_tasks(sources: Sequence[Source], target_bytes: int) -> list[EncodeTask]:
    """Tasks of about ``target_bytes`` input bytes: large uncompressed inputs are cut into byte
    ranges (Parquet files between row groups), small inputs are grouped in order. A function of
    the inputs and ``target_bytes`` only, so every engine runs the same tasks."""
    pieces = plan_shards(sources, max(MIN_SHARD_BYTES, target_bytes))
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


def number_documents(tasks: Sequence[EncodeTask], counts: Sequence[int]) -> list[EncodeTask]:
    """The tasks with the index of their first document in the whole input, from the number of
    documents of each (:func:`count_task`)."""
    starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)[:-1])).tolist() if len(counts) else []
    return [dataclasses.replace(t, first_document=int(s)) for t, s in zip(tasks, starts)]


def _batches(task: EncodeTask, job: EncodeJob) -> Iterator[DocBatch]:
    for piece in task.pieces:
        yield from read_shard(piece, purpose="encode", errors=job.errors, normalize=job.normalize,
                              batch_bytes=job.batch_bytes)


def count_task(task: EncodeTask, job: EncodeJob) -> int:
    """Documents of the task (a pass of its own, run before sampling so that every task knows
    the index of its first document without reading the tasks before it)."""
    return sum(batch.n_documents for batch in _batches(task, job))


def encode_task(task: EncodeTask, job: EncodeJob, tokenizer: Tokenizer,
                report: Callable[[int], None] | None = None) -> TaskResult:
    """Encode the task's documents into parts in ``job.staging``; ``report(n)`` (local runs)
    hears of every batch's input bytes as it is read."""
    t0 = time.perf_counter()
    staging = Path(job.staging)
    sink = ShardSink(staging, task.index, tokenizer, limit=job.shard_tokens, metadata=json.loads(job.metadata_json),
                     layout=job.layout)
    input_bytes = texts = documents = text_bytes = invalid = 0
    batches = read_ahead(_batches(task, job)) if job.read_ahead else _batches(task, job)

    def checked() -> Iterator[DocBatch]:
        for batch in batches:
            if not os.path.isdir(staging):
                raise EncodeCancelled(f"encoding of {task.source} stopped: the run was cancelled")
            yield batch

    try:
        for encoded in encode_batches(checked(), job.encoder(tokenizer), first_index=task.first_document,
                                      dtype=tokenizer.segmenter.id_dtype):
            if encoded.n_documents:
                sink.write(encoded.ids, encoded.offsets)
            input_bytes += encoded.input_bytes
            texts += encoded.texts
            documents += encoded.n_documents
            text_bytes += encoded.text_bytes
            invalid += encoded.invalid_utf8
            if report is not None:
                report(encoded.input_bytes)
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
    if not _warm:
        Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"ab": 5}).warmup()
        _warm = True
