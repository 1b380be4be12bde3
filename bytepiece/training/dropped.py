"""The dropped pieces of pruning, kept in the order that makes re-segmenting them cheap.

Step 5 of the algorithm re-segments every piece that is not a candidate (on code, half of the
corpus's bytes: long lines counted once) with the tokenizer of the candidates. Done in sorted
order, consecutive pieces share their leading bytes, and the re-segmentation kernel reuses the
work of the common prefix and finds the same trie paths in cache (``kernels.segment``): three
times the throughput of the pass-2 (hash) order on the Linux sources. So the dropped pieces are
bucketed by their first eight bytes into ranges (cut at quantiles of the first partition seen,
a random sample since partitions are hash ranges), each bucket is held in memory or spilled
like any run, and each is sorted by its first 24 bytes when it is read back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import numpy as np

from ..kernels.stand_ins import small
from .spill import PieceRun, SpillDir, OnDisk

#: pieces' leading bytes the sort looks at (ties beyond them cost only some shared work)
SORT_BYTES = 24
#: partitions of up to this many pieces are bucketed by numpy: a small training run (README's)
#: then never compiles the counting sort
NUMPY_BUCKETS_MAX = 1 << 16


def sort_for_sharing(run: PieceRun) -> PieceRun:
    """The pieces of ``run`` ordered by their first ``SORT_BYTES`` bytes."""
    from ..kernels.runs import gather_pieces, prefix_keys

    if run.size < 2:
        return run
    keys = [prefix_keys(run.arena, run.offsets, skip) for skip in range(SORT_BYTES - 8, -1, -8)]
    order = np.lexsort(keys).astype(np.int64)
    return PieceRun(*gather_pieces(order, run.hashes, run.counts, run.offsets[:-1], np.diff(run.offsets), run.arena))


def concat(runs: list[PieceRun]) -> PieceRun:
    """Runs joined end to end."""
    runs = [r for r in runs if r.size]
    if not runs:
        return PieceRun.empty()
    if len(runs) == 1:
        return runs[0]
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for r in runs:
        offsets.append(r.offsets[1:] + base)
        base += int(r.offsets[-1])
    return PieceRun(np.concatenate([r.hashes for r in runs]), np.concatenate([r.counts for r in runs]),
                    np.concatenate(offsets), np.concatenate([r.arena for r in runs]))


class DroppedPieces:
    """Dropped pieces in buckets of leading-byte ranges, under ``limit`` bytes of memory."""

    def __init__(self, limit: int, spill: SpillDir, *, bucket_bytes: int) -> None:
        self.limit = limit
        self.spill = spill
        self.bucket_bytes = max(1, bucket_bytes)
        self.bounds: np.ndarray | None = None
        self.buckets: list[list[PieceRun | OnDisk]] = []
        self.count = 0
        self.piece_bytes = 0  # the bytes of all the pieces added, in memory or not
        self.memory = 0

    def add(self, run: PieceRun, expected_runs: int) -> None:
        """Add one partition's dropped pieces (``expected_runs``: how many such partitions come,
        to size the buckets from the first)."""
        from ..kernels.runs import bucket_order, gather_pieces, numpy_bucket_order, prefix_keys

        if not run.size:
            return
        keys = prefix_keys(run.arena, run.offsets, 0)
        if self.bounds is None:
            n = max(1, int(run.nbytes * max(1, expected_runs) // self.bucket_bytes))
            cuts = np.sort(keys)[np.linspace(0, len(keys) - 1, n + 1).astype(np.int64)[1:-1]]
            self.bounds = np.unique(cuts)
            self.buckets = [[] for _ in range(len(self.bounds) + 1)]
        if small(len(keys), NUMPY_BUCKETS_MAX):
            order, edges = numpy_bucket_order(keys, self.bounds)
        else:
            order, edges = bucket_order(keys, self.bounds)
        lengths = np.diff(run.offsets)
        for b in range(len(self.buckets)):
            lo, hi = int(edges[b]), int(edges[b + 1])
            if hi > lo:
                part = PieceRun(*gather_pieces(order[lo:hi], run.hashes, run.counts, run.offsets[:-1], lengths, run.arena))
                self.buckets[b].append(part)
                self.memory += part.nbytes
        self.count += run.size
        self.piece_bytes += int(run.offsets[-1])
        self.spill_to(self.limit)

    def spill_to(self, limit: int) -> None:
        """Move buckets to disk, the largest first, until at most ``limit`` bytes stay in memory."""
        while self.memory > limit:
            self._spill_largest()

    def _spill_largest(self) -> None:
        sizes = [sum(r.nbytes for r in bucket if isinstance(r, PieceRun)) for bucket in self.buckets]
        b = int(np.argmax(sizes)) if sizes else 0
        if not sizes or not sizes[b]:
            self.memory = 0
            return
        merged = concat([r for r in self.buckets[b] if isinstance(r, PieceRun)])
        kept: list[PieceRun | OnDisk] = [r for r in self.buckets[b] if isinstance(r, OnDisk)]
        self.buckets[b] = kept + [OnDisk(merged, self.spill)]
        self.memory -= sizes[b]

    def batches(self, max_bytes: int) -> Iterator[PieceRun]:
        """The pieces, bucket by bucket in key order, in runs of about ``max_bytes`` piece bytes.
        A bucket is sorted as a whole when it is small; one that is not (thousands of pieces
        that all start with ``#define `` share one 8-byte key, and no cut can split them) is read
        in groups of about twice the bucket size, each sorted, so memory stays bounded."""
        group_bytes = 2 * self.bucket_bytes
        for b in range(len(self.buckets)):
            parts, self.buckets[b] = self.buckets[b], []
            group: list[PieceRun] = []
            size = 0
            for piece_run in _slices(parts, max(1, self.bucket_bytes // 2)):
                group.append(piece_run)
                size += piece_run.nbytes
                if size >= group_bytes:
                    yield from _sorted_batches(group, max_bytes)
                    group, size = [], 0
            if group:
                yield from _sorted_batches(group, max_bytes)


def _slices(parts: list[PieceRun | OnDisk], max_bytes: int) -> Iterator[PieceRun]:
    """The parts of a bucket, read in slices of about ``max_bytes`` (slices of a spilled part are
    read from disk only when reached)."""
    while parts:
        part = parts.pop(0)
        n = part.length if isinstance(part, OnDisk) else part.size
        step = max(1, max_bytes // max(1, part.nbytes // max(1, n)))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            yield cast(PieceRun, part.load(lo, hi)) if isinstance(part, OnDisk) else part.slice(lo, hi)
        del part


def _sorted_batches(group: list[PieceRun], max_bytes: int) -> Iterator[PieceRun]:
    run = sort_for_sharing(concat(group))
    group.clear()
    start = 0
    while start < run.size:
        end = int(np.searchsorted(run.offsets, run.offsets[start] + max_bytes, side="right")) - 1
        end = min(max(end, start + 1), run.size)
        yield run.slice(start, end)
        start = end
