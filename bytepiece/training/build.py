"""The two counting passes of training, reduced under the memory budget.

Pass 1 maps shards to sorted maximal-gram runs (plus 1-/2-gram counts), reduces them into a
:class:`~bytepiece.training.spill.RunStore`, then derives the kept n-grams partition by partition
(partitions never separate keys that share their first three bytes, so every n-gram of length
>= 3 is counted whole in one partition) into the :class:`NgramModel` that pass 2 needs whole.
Pass 2 maps shards to piece runs with that model, reduces them the same way, and splits the
pieces partition by partition into the pruning candidates (kept in memory: all single bytes and
the pieces short and frequent enough) and the dropped pieces (kept in memory, or on disk when the
counts were spilled), whose counts pruning re-distributes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..corpus import Shard
from ..engine import Engine, thread_pool
from .spill import KeyRun, PieceRun, RunStore, SpillDir
from ..errors import TrainingError
from ..kernels.stand_ins import small
from ..progress import Progress
from .dropped import DroppedPieces, concat
from .memory_plan import MemoryPlan
from .passes import (NO_READS, NgramModel, PassOptions, ReadCounts, count_shard_grams, count_shard_pieces,
                     map_shards)

T = TypeVar("T")
R = TypeVar("R")

#: load factor of the n-gram score table (open addressing, linear probing)
TABLE_LOAD = 0.6
#: pass 1's counts of up to this many bytes (16 a distinct maximal gram) derive their n-grams by
#: numpy (about 0.3 µs a gram, a few times the kernels' time), where the kernels' walk costs a first
#: run 3 s of compiling; see also ``warmup.LARGE_CORPUS_BYTES``
NUMPY_DERIVE_BYTES = 16 << 20
#: up to this many kept n-grams of length >= 3 go into the score table in Python (about 0.3 µs
#: each), where ``insert_scores`` costs a first run 0.9 s of compiling
PYTHON_INSERT_MAX = 1 << 18


@dataclass
class PassReport:
    """What a pass did, for the summary and ``MODEL.meta.json``."""

    spilled_bytes: int = 0
    partitions: int = 1
    worker_peaks: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _sum_shard_bytes(shards: list[Shard]) -> int:
    return sum(s.size for s in shards)


def count_ngrams(engine: Engine, shards: list[Shard], options: PassOptions, plan: MemoryPlan, spill: SpillDir,
                 progress: Progress) -> tuple[NgramCounts, ReadCounts, PassReport]:
    """Pass 1 (DESIGN 5, step 1): every shard's maximal grams, reduced under the budget."""
    store = RunStore(plan.pass1_reducer_limit(), spill)
    ones = np.zeros(256, np.int64)
    twos = np.zeros(1 << 16, np.int64)
    read = NO_READS
    with progress.phase("count n-grams", _sum_shard_bytes(shards)) as advance:
        for _, result in map_shards(engine, count_shard_grams, shards, options, advance=advance, window=plan.window):
            store.add(result.run)
            ones += result.ones
            twos += result.twos
            read = read + result.read
    report = PassReport(spilled_bytes=store.spilled_bytes, worker_peaks=engine.phase_peaks())
    return NgramCounts(store, ones, twos), read, report


@dataclass
class NgramCounts:
    store: RunStore  # maximal grams
    ones: np.ndarray  # 1-gram counts
    twos: np.ndarray  # 2-gram counts


#: threads that read the reducers' partitions back and work on them (the numba kernels and file
#: reads release the GIL) while the main thread files their results in order
SPLIT_THREADS = 2


def _in_order_on_threads(fn: Callable[..., R], items: list[T], *args: Any) -> Iterator[R]:
    """``fn(item, *args)`` for each item, in order, computed on ``SPLIT_THREADS`` threads, which
    keep working while the caller handles a result: at most ``SPLIT_THREADS + 1`` items in flight."""
    pool = thread_pool(SPLIT_THREADS, purpose="bytepiece-reducer")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item, *args))
            if len(pending) > SPLIT_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # an error or an abandoned generator: nothing new starts
            future.cancel()
        wait(pending)


def _count_long(part: tuple[int, int | None], store: RunStore, options: PassOptions, by_numpy: bool) -> int:
    from ..kernels.ngrams import count_long, numpy_count_long

    run = store.load(part[0], part[1], KeyRun)
    count = numpy_count_long if by_numpy else count_long
    return int(count(run.keys, run.counts, options.order, options.min_count))


def _derive_scores(part: tuple[int, int | None], store: RunStore, options: PassOptions,
                   twos: np.ndarray, by_numpy: bool) -> tuple[np.ndarray, np.ndarray]:
    """The kept n-grams of length >= 3 of one partition and their conditional log probabilities."""
    from ..kernels.ngrams import derive_long, numpy_derive_long

    run = store.load(part[0], part[1], KeyRun)
    derive = numpy_derive_long if by_numpy else derive_long
    keys, kept_counts, parents = derive(run.keys, run.counts, options.order, options.min_count, twos)
    del run
    return keys, np.log(kept_counts) - np.log(parents)


def ngram_model(counts: NgramCounts, options: PassOptions, plan: MemoryPlan, progress: Progress) -> tuple[NgramModel, PassReport]:
    """DESIGN 5, step 2: keep the n-grams counted at least ``min_count`` times and turn their
    counts into conditional log probabilities (the same float64 operations as the original)."""
    from ..kernels.ngrams import PREFIX3_MASK, insert_scores, python_insert_scores

    store, ones, twos = counts.store, counts.ones.copy(), counts.twos
    total = int(ones.sum())
    if total == 0:
        raise TrainingError("the corpus is empty (no text in it); nothing to learn a vocabulary from")
    # Every single byte is a 1-gram: the missing ones get count 1 (and one position each).
    missing = ones == 0
    ones[missing] = 1
    total += int(missing.sum())
    with np.errstate(divide="ignore"):
        score1 = np.log(ones) - np.log(total)
        kept2 = twos >= options.min_count
        score2 = np.full(1 << 16, -np.inf)
        first = np.arange(1 << 16) >> 8
        score2[kept2] = np.log(twos[kept2]) - np.log(ones[first[kept2]])
    with progress.phase("prune n-grams", None):
        # Partitions are read on threads as in pass 2 (see count_pieces), a third of the size.
        parts = store.partitions(plan.partition_bytes(store.limit) // (SPLIT_THREADS + 1), PREFIX3_MASK)
        by_numpy = small(store.total_bytes(), NUMPY_DERIVE_BYTES)
        n_long = sum(_in_order_on_threads(_count_long, parts, store, options, by_numpy))
        cap = max(16, int(n_long / TABLE_LOAD) + 1)
        # The model's size is known now: refuse a budget that cannot hold it in pass 2 before
        # building it (and before its partitions are read back a second time).
        plan.check_pass2(score1.nbytes + score2.nbytes + 16 * cap)
        spilled_before = store.spilled_bytes
        if store.nbytes + 16 * cap > plan.budget:
            store.spill_all()  # the table is needed whole: the counts wait on disk, one partition at a time
        table = np.zeros(2 * cap, np.uint64)
        # what the table leaves of the budget bounds the partitions loaded beside it
        room = max(plan.budget - 16 * cap - store.nbytes, 1 << 20)
        # Threads derive the scores of the next partitions while this one inserts (in order): a
        # partition being derived holds about six times its size, and SPLIT_THREADS + 1 are in flight.
        part_bytes = max(1 << 14, room // (6 * (SPLIT_THREADS + 1)))
        insert = python_insert_scores if small(n_long, PYTHON_INSERT_MAX) else insert_scores
        for keys, scores in _in_order_on_threads(_derive_scores, store.partitions(part_bytes, PREFIX3_MASK),
                                                 store, options, twos, by_numpy):
            insert(table, cap, keys, scores)
            del keys, scores
    spilled = store.spilled_bytes - spilled_before
    store.close()
    model = NgramModel(score1, score2, table, cap, 256 + int(kept2.sum()) + n_long)
    return model, PassReport(spilled_bytes=spilled, partitions=len(parts), extra={"positions": total})


@dataclass
class PieceCounts:
    """Pass 2's result split for pruning: the candidates (in memory, in (hash, bytes) order) and
    the dropped pieces (bucketed for re-segmentation, see :mod:`.dropped`)."""

    candidates: PieceRun
    dropped: DroppedPieces
    distinct: int
    seen: int

    def take_candidates(self) -> PieceRun:
        """The candidates, no longer held here (pruning keeps its own sorted copy, and two
        copies of millions of pieces are worth freeing)."""
        run, self.candidates = self.candidates, PieceRun.empty()
        return run


def _select(run: PieceRun, which: np.ndarray) -> PieceRun:
    from ..kernels.runs import gather_pieces

    lengths = np.diff(run.offsets)
    return PieceRun(*gather_pieces(which.astype(np.int64), run.hashes, run.counts, run.offsets[:-1], lengths, run.arena))


def _split_partition(part: tuple[int, int | None], store: RunStore, min_count: int,
                     max_piece_length: int) -> tuple[int, PieceRun, PieceRun]:
    """One partition of pass 2's counts as (distinct pieces, candidates, dropped pieces)."""
    run = store.load(part[0], part[1], PieceRun)
    lengths = np.diff(run.offsets)
    keep = (lengths == 1) | ((lengths <= max_piece_length) & (run.counts >= min_count))
    return run.size, _select(run, np.flatnonzero(keep)), _select(run, np.flatnonzero(~keep))


def count_pieces(engine: Engine, shards: list[Shard], model: NgramModel, options: PassOptions, plan: MemoryPlan,
                 spill: SpillDir, progress: Progress, *, max_piece_length: int) -> tuple[PieceCounts, PassReport]:
    """Pass 2 (DESIGN 5, steps 3-4) and the candidate/dropped split of step 5."""
    limit = plan.pass2_reducer_limit(model.nbytes)
    store = RunStore(limit, spill)
    seen = 0
    shared = engine.share(model)
    with progress.phase("count pieces", _sum_shard_bytes(shards)) as advance:
        for _, result in map_shards(engine, count_shard_pieces, shards, shared, options, advance=advance,
                                    window=plan.window):
            store.add(result.run)
            seen += result.seen
    del shared
    report = PassReport(spilled_bytes=store.spilled_bytes, worker_peaks=engine.phase_peaks())
    candidates: list[PieceRun] = []
    dropped = DroppedPieces(limit, spill, bucket_bytes=plan.partition_bytes(limit))
    distinct = 0
    # Partitions are loaded and split on SPLIT_THREADS threads while this one files the dropped
    # pieces of the one before: three in flight, a third of the usual size each, hold less than
    # the usual one being split (the partition and its two parts) did.
    parts = store.partitions(plan.partition_bytes(limit) // (SPLIT_THREADS + 1))
    report.partitions = len(parts)
    # merging spilled runs can take a third of a run that spills: a bar of its own, by partition
    with progress.phase("merge counts", len(parts), unit="partitions") as advance:
        for size, kept, rest in _in_order_on_threads(_split_partition, parts, store, options.min_count,
                                                     max_piece_length):
            distinct += size
            candidates.append(kept)
            dropped.add(rest, len(parts))
            del kept, rest
            advance(1)
    store.close()
    merged = concat(candidates)
    return PieceCounts(merged, dropped, distinct, seen), report


def with_all_bytes(candidates: PieceRun) -> PieceRun:
    """The candidates plus every single byte they lack, with count 1 (DESIGN 5, step 5: every
    byte is a piece, so any text can be segmented)."""
    lengths = np.diff(candidates.offsets)
    present = np.zeros(256, dtype=np.bool_)
    present[candidates.arena[candidates.offsets[:-1][lengths == 1]]] = True
    missing = np.flatnonzero(~present).astype(np.uint8)
    if not len(missing):
        return candidates
    extra = PieceRun(np.zeros(len(missing), np.uint64), np.ones(len(missing), np.int64),
                     np.arange(len(missing) + 1, dtype=np.int64), missing)
    return concat([candidates, extra])

