"""The corpus passes of training as engine tasks, and what they share.

Each pass is a module-level *task function* (so every engine backend can run it) from a shard to
a partial result of numpy arrays, plus the options it needs in a small frozen dataclass (cheap to
send to a worker). The trainer reduces the results in corpus order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..corpus import DEFAULT_BATCH_BYTES, Shard, read_shard, reporting_reads
from ..engine import Engine
from ..kernels.stand_ins import small
from ..progress import Advance, ShardBar
from .memory_plan import DISTINCT_CHUNKS_PER_BYTE
from .spill import KeyRun, PieceRun
from ..normalize import job_ranges, training_jobs


def map_shards(engine: Engine, fn: Callable[..., Any], shards: list[Shard], *args: Any, advance: Advance,
               window: int | None = None) -> Iterator[tuple[Shard, Any]]:
    """``engine.map`` of a corpus pass, with its bar in input bytes: on a local engine the bar
    moves as the workers read (a single gzip file is one shard), elsewhere per shard."""
    bar = ShardBar(advance)
    task = functools.partial(_reporting_reads, fn, bar) if engine.is_local else fn
    for shard, result in engine.map(task, shards, *args, window=window):
        bar.done(id(shard), shard.size)
        yield shard, result


def _reporting_reads(fn: Callable[..., Any], bar: ShardBar, shard: Shard, *args: Any) -> Any:
    with reporting_reads(bar.reading(id(shard), shard.size)):
        return fn(shard, *args)


@dataclass(frozen=True)
class PassOptions:
    order: int
    min_count: int
    isolate_digits: bool
    ensure_unicode: bool
    errors: str = "replace"
    batch_bytes: int = DEFAULT_BATCH_BYTES
    job_bytes: int | None = None  # default: normalize.JOB_BYTES
    distinct_bytes: int = 0  # default: DISTINCT_CHUNK_BYTES


class ReadCounts(NamedTuple):
    """What reading a shard saw (the reducer adds these up)."""

    texts: int
    bytes: int
    invalid_utf8: int

    def __add__(self, other: tuple) -> ReadCounts:
        return ReadCounts(self.texts + other[0], self.bytes + other[1], self.invalid_utf8 + other[2])


NO_READS = ReadCounts(0, 0, 0)


#: memory of distinct chunks a training task collects before it does their work and starts
#: afresh, at most (a task's share of the plan is ``DISTINCT_CHUNKS_PER_BYTE`` times its shard)
DISTINCT_CHUNK_BYTES = 16 << 20
#: memory a distinct chunk takes besides its bytes: its entry (28), two slots (8), its bound (8)
_ENTRY_BYTES = 48
#: shards up to this size find their distinct chunks with a dict (a few ms a MB, where the table
#: kernel costs a first run 1.3 s of compiling), and count their pieces in one (where the piece
#: table's kernels cost 4 s); see also ``warmup.LARGE_CORPUS_BYTES``
PYTHON_DISTINCT_MAX = 2 << 20

#: (buffer, chunk bounds, chunk weights, first chunk, end chunk): a job over distinct chunks
WeightedJob = tuple[np.ndarray, np.ndarray, np.ndarray, int, int]


def distinct_chunk_jobs(shard: Shard, options: PassOptions, reads: list[ReadCounts]) -> Iterator[WeightedJob]:
    """The training chunks of ``shard``, each distinct chunk once with the number of times it
    occurs as its weight, in jobs of about ``options.job_bytes``; ``reads[0]`` adds up what was
    read.

    Why: what both passes do to a chunk (count its n-grams, segment it and count its pieces)
    depends on its bytes alone, and text repeats whole chunks. Source code most of all: 12-28% of
    the bytes of a 13 MB shard of the Linux sources are in lines seen before in it; in prose
    about 1%. Hashing a chunk costs a few cycles a byte, its work a few hundred. The chunks are
    collected until their table takes ``options.distinct_bytes`` (default: the plan's share,
    ``DISTINCT_CHUNKS_PER_BYTE`` times the shard, at most ``DISTINCT_CHUNK_BYTES``), so a task's
    memory stays bounded whatever its shard and its lines; counts do not depend on where that
    falls."""
    limit = options.distinct_bytes or min(DISTINCT_CHUNK_BYTES, DISTINCT_CHUNKS_PER_BYTE * shard.size)
    if small(shard.size, PYTHON_DISTINCT_MAX):
        yield from _distinct_by_dict(shard, options, reads, limit)
        return
    from ..kernels.bytetable import ByteTable, add_chunks

    arena_bytes = max(1 << 20, min(shard.size, limit) + options.batch_bytes)
    table = ByteTable.new(arena_bytes=arena_bytes)
    arrays: tuple[Any, ...] = tuple(table)[:6]
    for batch in read_shard(shard, purpose="train", errors=options.errors, batch_bytes=options.batch_bytes):
        reads[0] += (batch.texts, len(batch.data), batch.invalid_utf8)
        for buf, bounds, lo, hi in training_jobs(batch, isolate_digits=options.isolate_digits, job_bytes=options.job_bytes):
            arrays = add_chunks(buf, bounds, lo, hi, *arrays, table.meta)
            # the table's memory: its bytes, and per chunk its entry, slots and bound
            if table.meta[1] + _ENTRY_BYTES * table.meta[0] >= limit:
                yield from _weighted_jobs(arrays, table.meta, options.job_bytes)
                table = ByteTable.new(arena_bytes=arena_bytes)
                arrays = tuple(table)[:6]
    if table.meta[0]:
        yield from _weighted_jobs(arrays, table.meta, options.job_bytes)


def _distinct_by_dict(shard: Shard, options: PassOptions, reads: list[ReadCounts], limit: int
                      ) -> Iterator[WeightedJob]:
    """:func:`distinct_chunk_jobs` with a dict for the table: the same jobs (chunks in the order
    first seen, flushed at the same points), and nothing to compile."""
    seen: dict[bytes, int] = {}
    used = 0
    for batch in read_shard(shard, purpose="train", errors=options.errors, batch_bytes=options.batch_bytes):
        reads[0] += (batch.texts, len(batch.data), batch.invalid_utf8)
        for buf, bounds, lo, hi in training_jobs(batch, isolate_digits=options.isolate_digits, job_bytes=options.job_bytes):
            data = buf.data  # a memoryview: slices copy only the chunk
            ends = bounds[lo:hi + 1].tolist()
            for a, b in zip(ends, ends[1:]):
                chunk = data[a:b].tobytes()
                count = seen.get(chunk, 0)
                seen[chunk] = count + 1
                if not count:
                    used += b - a
            if used + _ENTRY_BYTES * len(seen) >= limit:
                yield from _dict_jobs(seen, options.job_bytes)
                seen, used = {}, 0
    if seen:
        yield from _dict_jobs(seen, options.job_bytes)


def _dict_jobs(seen: dict[bytes, int], job_bytes: int | None) -> Iterator[WeightedJob]:
    chunks = list(seen)
    n = len(chunks)
    bounds = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, chunks), np.int64, count=n), out=bounds[1:])
    buf = np.frombuffer(bytearray().join(chunks), np.uint8)  # writable, as the table's arena: one compiled kernel
    weights = np.fromiter(seen.values(), np.int64, count=n)
    for lo, hi in job_ranges(bounds, job_bytes):
        yield buf, bounds, weights, lo, hi


def _weighted_jobs(arrays: tuple[Any, ...], meta: np.ndarray, job_bytes: int | None) -> Iterator[WeightedJob]:
    """Jobs over the entries of a chunk table: its chunks lie in its arena one after another."""
    _, _, starts, _, counts, arena = arrays
    n, used = int(meta[0]), int(meta[1])
    bounds = np.empty(n + 1, np.int64)
    bounds[:n] = starts[:n]
    bounds[n] = used
    buf, weights = arena[:used], counts[:n]
    for lo, hi in job_ranges(bounds, job_bytes):
        yield buf, bounds, weights, lo, hi


class ShardGrams(NamedTuple):
    """Pass 1 result of one shard: its maximal grams, its 1-/2-gram counts and what was read."""

    run: KeyRun
    ones: npt.NDArray[np.int64]
    twos: npt.NDArray[np.int64]
    read: ReadCounts


class NgramModel(NamedTuple):
    """The byte n-gram LM that pass 2 segments with: conditional log probabilities of the kept
    1-grams (``ones``), 2-grams (``twos``, -inf where pruned) and longer n-grams (``table``, an
    open-addressing table of ``cap`` slots, see :mod:`bytepiece.kernels.ngrams`)."""

    ones: npt.NDArray[np.float64]
    twos: npt.NDArray[np.float64]
    table: npt.NDArray[np.uint64]
    cap: int
    kept: int  # n-grams kept, all lengths

    @property
    def nbytes(self) -> int:
        return self.ones.nbytes + self.twos.nbytes + self.table.nbytes


def merge_run_into_stack(stack: list[KeyRun], run: KeyRun) -> None:
    """Binary-counter merging: runs of similar size merge, so each count merges O(log n) times."""
    stack.append(run)
    while len(stack) >= 2 and 2 * stack[-1].size >= stack[-2].size:
        b = stack.pop()
        a = stack.pop()
        stack.append(a.merge(b))


#: shards up to this size count their maximal grams by numpy (jobs of up to this many positions;
#: about 50 ms a MB, twice the kernels' time), where the counting kernels cost a first run 2.4 s
#: of compiling; larger shards (a large corpus's) keep the kernels. See ``warmup.LARGE_CORPUS_BYTES``
NUMPY_GRAMS_MAX = 2 << 20


def count_shard_grams(shard: Shard, options: PassOptions) -> ShardGrams:
    """Pass 1 task: the sorted, counted maximal grams of every chunk position of ``shard``."""
    from ..kernels.ngrams import count_grams, numpy_count_grams, numpy_prefix_counts, prefix_counts, table_counts

    by_numpy = small(shard.size, NUMPY_GRAMS_MAX)
    stack: list[KeyRun] = []
    reads = [NO_READS]
    for buf, bounds, weights, lo, hi in distinct_chunk_jobs(shard, options, reads):
        positions = int(bounds[hi] - bounds[lo])
        if by_numpy and positions <= NUMPY_GRAMS_MAX:
            merge_run_into_stack(stack, KeyRun(*numpy_count_grams(buf, bounds, weights, lo, hi, options.order)))
            continue
        table, bits = count_grams(buf, bounds, weights, lo, hi, options.order, max(10, (positions // 4).bit_length()))
        keys = table[0::2]
        keys = keys[keys != 0]
        keys.sort()
        merge_run_into_stack(stack, KeyRun(keys, table_counts(table, bits, keys)))
        del table
    run = KeyRun.empty()
    while stack:
        run = stack.pop().merge(run) if run.size else stack.pop()
    ones = np.zeros(256, np.int64)
    twos = np.zeros(1 << 16, np.int64)
    if by_numpy:
        numpy_prefix_counts(run.keys, run.counts, ones, twos)
    else:
        prefix_counts(run.keys, run.counts, ones, twos)
    return ShardGrams(run, ones, twos, reads[0])


class ShardPieces(NamedTuple):
    """Pass 2 result of one shard: its pieces with their counts, ordered by (hash, bytes)."""

    run: PieceRun
    seen: int  # pieces counted (with repetition)


def count_shard_pieces(shard: Shard, model: NgramModel, options: PassOptions) -> ShardPieces:
    """Pass 2 task: segment ``shard`` with the BNLM and count the pieces."""
    from ..kernels.bnlm import count_pieces
    from ..kernels.bytetable import ByteTable

    if small(shard.size, PYTHON_DISTINCT_MAX):
        return _count_pieces_by_dict(shard, model, options)
    table = ByteTable.new()
    arrays: tuple[Any, ...] = tuple(table)
    meta = table.meta
    for buf, bounds, weights, lo, hi in distinct_chunk_jobs(shard, options, [NO_READS]):
        arrays = count_pieces(buf, bounds, weights, lo, hi, options.order, options.ensure_unicode, model.ones,
                              model.twos, model.table, model.cap, *arrays[:6], meta)
    _, hashes, starts, lengths, counts, arena = arrays[:6]
    n = int(meta[0])
    return ShardPieces(piece_run(hashes[:n], counts[:n], starts[:n], lengths[:n], arena), int(meta[2]))


def _count_pieces_by_dict(shard: Shard, model: NgramModel, options: PassOptions) -> ShardPieces:
    """:func:`count_shard_pieces` with a dict for the table of pieces: the same run, and only
    the segmentation to compile (``segment_pieces``), not the table's kernels (4 s of a first
    run's CPU). The run is ordered by (hash, bytes) as ``piece_run`` orders a table's."""
    from ..kernels.bnlm import segment_pieces

    found: dict[bytes, list[int]] = {}  # piece -> [hash, count]
    seen = 0
    vals = model.table.view(np.float64)
    for buf, bounds, weights, lo, hi in distinct_chunk_jobs(shard, options, [NO_READS]):
        ends, hashes = segment_pieces(buf, bounds, lo, hi, options.order, options.ensure_unicode, model.ones,
                                      model.twos, model.table, vals, model.cap)
        chunk = np.searchsorted(bounds[lo:hi + 1], ends, side="left") - 1 + lo  # each piece's chunk
        piece_weights = weights[chunk]
        seen += int(piece_weights.sum())
        first = int(bounds[lo])
        data = buf[first:bounds[hi]].tobytes()  # this job's chunks (jobs share one buffer)
        ends_list = (ends - first).tolist()
        starts = [0] + ends_list[:-1]  # chunks lie end to end: a piece starts where one ended
        for a, b, h, w in zip(starts, ends_list, hashes.tolist(), piece_weights.tolist()):
            piece = data[a:b]
            entry = found.get(piece)
            if entry is None:
                found[piece] = [h, w]
            else:
                entry[1] += w
    pieces = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
    n = len(pieces)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter((len(p) for p, _ in pieces), np.int64, count=n), out=offsets[1:])
    run = PieceRun(np.fromiter((e[0] for _, e in pieces), np.uint64, count=n),
                   np.fromiter((e[1] for _, e in pieces), np.int64, count=n), offsets,
                   np.frombuffer(bytearray().join(p for p, _ in pieces), np.uint8))
    return ShardPieces(run, seen)


def piece_run(hashes: np.ndarray, counts: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
              arena: np.ndarray) -> PieceRun:
    """Table entries as a run ordered by (hash, bytes)."""
    from ..kernels.runs import gather_pieces

    order = np.argsort(hashes, kind="stable")
    sorted_h = hashes[order]
    ties = np.flatnonzero(sorted_h[1:] == sorted_h[:-1])
    if len(ties):  # equal 64-bit hashes of different pieces: order those by their bytes
        order = order.copy()
        i = 0
        while i < len(ties):
            lo = int(ties[i])
            hi = lo + 1
            while i < len(ties) and int(ties[i]) == hi - 1:
                hi += 1
                i += 1
            group = order[lo:hi + 0]
            key = [arena[starts[e]:starts[e] + lengths[e]].tobytes() for e in group.tolist()]
            order[lo:hi] = group[np.array(sorted(range(len(key)), key=key.__getitem__), dtype=np.int64)]
    return PieceRun(*gather_pieces(order, hashes, counts, starts, lengths.astype(np.int64), arena))
