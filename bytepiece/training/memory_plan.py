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
#: the table of a task's distinct chunks per input byte (their bytes, and per chunk its entry
#: and slots: 28 + 8 bytes for lines of code, about 40 bytes each), see ``passes.distinct_chunk_jobs``
DISTINCT_CHUNKS_PER_BYTE = 2
#: working memory of a pass-1 task per input byte of its shard (keys, sort, merged runs)
PASS1_TASK_PER_BYTE = 6 + DISTINCT_CHUNKS_PER_BYTE
#: size of a pass-1 result per input byte (distinct maximal grams, 16 bytes each)
PASS1_RESULT_PER_BYTE = 4
#: working memory of a pass-2 task per input byte (piece table, arena, Viterbi arrays)
PASS2_TASK_PER_BYTE = 4 + DISTINCT_CHUNKS_PER_BYTE
PASS2_RESULT_PER_BYTE = 3
#: peak working memory of the candidate set of pruning per byte of its pieces: the double array
#: (at most one cell per byte, 12 bytes each, plus the 4-byte free list while it is built), the
#: sorted and reversed copies of the pieces, and the packed cells of re-segmentation (16 bytes a
#: cell, built while the double array still lives: ``kernels.segment.packed_cells``)
PRUNE_PER_PIECE_BYTE = 28
#: the same per candidate (offsets, counts, the level lists of the trie build)
PRUNE_PER_PIECE = 64
#: the least a reducer needs to make progress (a few merges of small runs)
MIN_REDUCER_BYTES = 1 << 20


#: the 1-gram and 2-gram score tables of the n-gram model (float64), whatever the corpus
NGRAM_DENSE_BYTES = 8 * (256 + (1 << 16))
#: the smallest table of longer n-grams (16 slots of key and score)
NGRAM_MIN_TABLE_BYTES = 16 * 16


@dataclass(frozen=True)
class MemoryPlan:
    budget: int
    workers: int  # tasks running at once
    shard_bytes: int
    window: int  # tasks submitted ahead of the one being reduced
    #: what the plan was made from besides the budget (the shard size asked for, the corpus
    #: size), so that the plan of another budget can be worked out: see ``smallest_budget``
    shard_bytes_asked: int | None = None
    input_bytes: int | None = None

    @classmethod
    def make(cls, budget: int, workers: int, shard_bytes: int | None = None, input_bytes: int | None = None) -> MemoryPlan:
        """The plan for ``workers`` tasks at once under ``budget``; shards are as large as the
        budget allows (fewer, larger sorted runs) but small enough that every worker gets
        several (``SHARDS_PER_WORKER``) of a corpus of ``input_bytes``, so none idles at the end."""
        shard_bytes_asked = shard_bytes
        if shard_bytes is None:
            per_task = budget // (4 * max(1, workers) * (PASS1_TASK_PER_BYTE + PASS1_RESULT_PER_BYTE))
            shard_bytes = min(DEFAULT_SHARD_BYTES, per_task)
            if input_bytes:
                shard_bytes = min(shard_bytes, -(-input_bytes // (SHARDS_PER_WORKER * max(1, workers))))
            shard_bytes = max(MIN_SHARD_BYTES, shard_bytes)
        return cls(budget, workers, shard_bytes, workers + 1, shard_bytes_asked, input_bytes)

    def in_flight(self, task_per_byte: int, result_per_byte: int) -> int:
        return self.shard_bytes * (self.workers * task_per_byte + self.window * result_per_byte)

    def pass1_reducer_limit(self) -> int:
        return max(MIN_REDUCER_BYTES, self.budget - self.in_flight(PASS1_TASK_PER_BYTE, PASS1_RESULT_PER_BYTE))

    def pass2_need(self, model_bytes: int) -> int:
        """What the second pass needs besides the reducer's runs: the n-gram model of
        ``model_bytes`` and the tasks in flight, plus the least a reducer works with."""
        return model_bytes + self.in_flight(PASS2_TASK_PER_BYTE, PASS2_RESULT_PER_BYTE) + MIN_REDUCER_BYTES

    def smallest_budget(self, model_bytes: int) -> int:
        """The smallest budget, in whole MiB, under which the second pass fits with an n-gram
        model of ``model_bytes``, for a run like this one (same workers, shard size asked for
        and corpus). A larger budget makes larger shards and so more work in flight, so the
        answer is not ``pass2_need`` of this plan but the least budget that covers its own plan."""
        def fits(mib: int) -> bool:
            plan = MemoryPlan.make(mib << 20, self.workers, self.shard_bytes_asked, self.input_bytes)
            return plan.pass2_need(model_bytes) <= plan.budget

        lo, hi = 1, -(-self.pass2_need(model_bytes) // (1 << 20))
        while not fits(hi):  # hi doubles until it fits (the work in flight grows slower than the budget)
            lo, hi = hi + 1, 2 * hi
        while lo < hi:  # fits() only turns true as the budget grows, one MiB at a time
            mid = (lo + hi) // 2
            if fits(mid):
                hi = mid
            else:
                lo = mid + 1
        return hi << 20

    def check_pass2(self, model_bytes: int) -> None:
        """Refuse, with the smallest budget that works, when the second pass cannot fit an
        n-gram model of ``model_bytes`` (called as soon as its size is known, before it is built)."""
        if self.pass2_need(model_bytes) > self.budget:
            least = self.smallest_budget(model_bytes)
            raise TrainingError(
                f"the memory budget ({format_size(self.budget)}) cannot hold the n-gram table of this corpus "
                f"({format_size(model_bytes)}) and the second pass's work; the smallest budget that works here is "
                f"{format_size(least)} (--max-memory {least >> 20}M)")

    def check_floor(self) -> None:
        """Refuse at once a budget that no corpus fits: below what the second pass needs with
        the smallest n-gram model. The corpus's own n-gram table comes on top; its size is
        known after the first pass, when :meth:`check_pass2` gives the exact figure."""
        floor = NGRAM_DENSE_BYTES + NGRAM_MIN_TABLE_BYTES
        if self.pass2_need(floor) > self.budget:
            least = self.smallest_budget(floor)
            raise TrainingError(
                f"the memory budget ({format_size(self.budget)}) is too small for any corpus: the second pass needs "
                f"{format_size(least)} (--max-memory {least >> 20}M) before the n-gram table of the corpus, which "
                "comes on top; a budget that cannot hold the table is refused after the first pass, with the exact "
                "smallest budget")

    def pass2_reducer_limit(self, model_bytes: int) -> int:
        self.check_pass2(model_bytes)
        return self.budget - self.pass2_need(model_bytes) + MIN_REDUCER_BYTES

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
