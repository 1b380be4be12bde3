"""How a training run spends its memory budget: shard size, tasks in flight, reducer limits.

The budget covers what grows with the corpus: the sorted runs held by the reducers, the results
of tasks that are finished but not yet reduced, the tasks' own working memory, and the n-gram
table of the second pass. The fixed cost of the interpreter, numpy and the compiled kernels
(about 150-200 MB) comes on top. The estimates below are per input byte of a shard, measured on
real text (code, English, Chinese) with margin; spilling keeps the reducers inside what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..corpus import DEFAULT_SHARD_BYTES
from ..units import format_size
from ..errors import TrainingError

MIN_SHARD_BYTES = 1 << 20
SHARDS_PER_WORKER = 4
#: working memory of a pass-1 task per input byte of its shard (keys, sort, merged runs)
PASS1_TASK_PER_BYTE = 6
#: size of a pass-1 result per input byte (distinct maximal grams, 16 bytes each)
PASS1_RESULT_PER_BYTE = 4
#: working memory of a pass-2 task per input byte (piece table, arena, Viterbi arrays)
PASS2_TASK_PER_BYTE = 4
PASS2_RESULT_PER_BYTE = 3
#: peak working memory of the candidate set of pruning per byte of its pieces: the double array
#: (at most one cell per byte, 12 bytes each, plus the 4-byte free list while it is built) and
#: the sorted and reversed copies of the pieces
PRUNE_PER_PIECE_BYTE = 20
#: the same per candidate (offsets, counts, the level lists of the trie build)
PRUNE_PER_PIECE = 64
#: the least a reducer needs to make progress (a few merges of small runs)
MIN_REDUCER_BYTES = 1 << 20


@dataclass(frozen=True)
class MemoryPlan:
    budget: int
    workers: int  # tasks running at once
    shard_bytes: int
    window: int  # tasks submitted ahead of the one being reduced

    @classmethod
    def make(cls, budget: int, workers: int, shard_bytes: int | None = None, input_bytes: int | None = None) -> MemoryPlan:
        """The plan for ``workers`` tasks at once under ``budget``; shards are as large as the
        budget allows (fewer, larger sorted runs) but small enough that every worker gets
        several (``SHARDS_PER_WORKER``) of a corpus of ``input_bytes``, so none idles at the end."""
        if shard_bytes is None:
            per_task = budget // (4 * max(1, workers) * (PASS1_TASK_PER_BYTE + PASS1_RESULT_PER_BYTE))
            shard_bytes = min(DEFAULT_SHARD_BYTES, per_task)
            if input_bytes:
                shard_bytes = min(shard_bytes, -(-input_bytes // (SHARDS_PER_WORKER * max(1, workers))))
            shard_bytes = max(MIN_SHARD_BYTES, shard_bytes)
        return cls(budget, workers, shard_bytes, workers + 1)

    def in_flight(self, task_per_byte: int, result_per_byte: int) -> int:
        return self.shard_bytes * (self.workers * task_per_byte + self.window * result_per_byte)

    def pass1_reducer_limit(self) -> int:
        return max(MIN_REDUCER_BYTES, self.budget - self.in_flight(PASS1_TASK_PER_BYTE, PASS1_RESULT_PER_BYTE))

    def pass2_reducer_limit(self, model_bytes: int) -> int:
        left = self.budget - model_bytes - self.in_flight(PASS2_TASK_PER_BYTE, PASS2_RESULT_PER_BYTE)
        if left < MIN_REDUCER_BYTES:
            need = model_bytes + self.in_flight(PASS2_TASK_PER_BYTE, PASS2_RESULT_PER_BYTE) + MIN_REDUCER_BYTES
            raise TrainingError(
                f"the memory budget ({format_size(self.budget)}) cannot hold the n-gram table of this corpus "
                f"({format_size(model_bytes)}) and the second pass's work; the smallest budget that works here is "
                f"about {format_size(need)} (--max-memory {-(-need // (1 << 20))}M)")
        return left

    def prune_dropped_limit(self, candidate_bytes: int, candidates: int) -> int:
        """Memory left for the dropped pieces while pruning builds and uses the candidate set;
        buckets beyond it wait on disk."""
        need = candidate_bytes * PRUNE_PER_PIECE_BYTE + candidates * PRUNE_PER_PIECE
        return max(0, self.budget - need)

    def partition_bytes(self, limit: int) -> int:
        """Size of the partitions a reducer loads back (two of them may be in flight)."""
        return max(1 << 14, limit // 4)

    def describe(self) -> dict:
        return {"budget_bytes": self.budget, "shard_bytes": self.shard_bytes, "tasks_in_flight": self.window}
