"""Piece pruning (DESIGN section 5, steps 5 and 6) over numpy arrays, on the engine.

The *candidates* are every piece that can still end up in a vocabulary: all single bytes, and
the pieces no longer than ``max_piece_length`` counted at least ``min_count`` times. They are
kept in sorted order and get one double-array trie of their reversed bytes, built once; each
"tokenizer of the kept pieces" is that trie with ``-inf`` scores for the candidates not kept. Scores are ``np.log(count) - np.log(total)`` computed by
numpy exactly as the original computes them, so Viterbi ties resolve the same way.

Re-segmentation (of the dropped pieces, and of the kept pieces in every redundancy round) is a
map over batches of pieces on the engine; each task returns a count vector over the candidates
and the vectors are added up, so results do not depend on the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..engine import Engine
from .spill import PieceRun
from ..kernels.segment import packed_cells, resegment_sorted, set_cell_scores
from ..kernels.trie import build_trie_arrays, lexicographic_order
from .dropped import sort_for_sharing
from ..progress import Progress

#: piece bytes per re-segmentation task
TASK_BYTES = 8 << 20


class TrieLinks(NamedTuple):
    """What the candidates' trie of reversed pieces keeps from round to round: its two-step
    table (``Trie.pair_cells``) and the candidate ending at each cell."""

    pair: npt.NDArray[np.int32]
    piece: npt.NDArray[np.int32]


def resegment_pieces(batch: PieceRun, links: TrieLinks, cells: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """Task: counts each candidate gets when the pieces of ``batch`` (with their counts; best in
    sorted order, see ``kernels.segment.resegment_sorted``) are segmented by the tokenizer whose
    log probabilities are the scores of ``cells`` (``kernels.segment.packed_cells``)."""
    counter = np.zeros(n, dtype=np.int64)
    resegment_sorted(cells, cells.view(np.float64), links.pair, links.piece, batch.arena, batch.offsets,
                     batch.counts, counter)
    return counter


class PieceSet:
    """Candidates of the pruning steps, their trie and their current counts."""

    def __init__(self, candidates: PieceRun, *, engine: Engine, progress: Progress | None = None) -> None:
        self.engine = engine
        self.progress = progress or Progress(False)
        candidates = sort_for_sharing(candidates)
        self.offsets = candidates.offsets
        self.arena = candidates.arena
        self.lengths = np.diff(candidates.offsets)
        n = candidates.size
        trie = build_trie_arrays(self.arena, self.offsets, np.arange(n, dtype=np.int32), reverse=True)
        # the double array lives on only in the packed cells, which carry each round's scores
        self.cells = packed_cells(trie.base_check)
        self._terminal = np.flatnonzero(trie.piece >= 0)  # the cell where each candidate ends ...
        self._terminal_piece = trie.piece[self._terminal]  # ... and which candidate that is
        self._links = engine.share(TrieLinks(trie.pair_cells(), trie.piece))
        del trie
        self.counts = candidates.counts.astype(np.int64).copy()
        self.present = np.ones(n, dtype=np.bool_)
        self._single_bytes = np.flatnonzero(self.lengths == 1)

    @property
    def n(self) -> int:
        return len(self.lengths)

    def piece(self, i: int) -> bytes:
        return self.arena[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def lexicographic_rank(self) -> npt.NDArray[np.int64]:
        """Each candidate's place in the byte order of all candidates (the last tie-breaker of
        ``shrink_to``)."""
        rank = np.empty(self.n, dtype=np.int64)
        rank[lexicographic_order(self.arena, self.offsets)] = np.arange(self.n, dtype=np.int64)
        return rank

    # -- the primitive ------------------------------------------------------------------------
    def _logp(self) -> npt.NDArray[np.float64]:
        scores = np.full(self.n, -np.inf)
        kept = self.counts[self.present]
        scores[self.present] = np.log(kept) - np.log(int(kept.sum()))
        return scores

    def _resegment(self, batches: Iterable[PieceRun], description: str, total: int | None) -> npt.NDArray[np.int64]:
        counter = np.zeros(self.n, dtype=np.int64)
        # Every byte must stay a piece: a text no present piece spells would end its path on a
        # cell without a piece, and resegment_sorted's unchecked counter index would be -1.
        if len(self._single_bytes) != 256 or not self.present[self._single_bytes].all():
            raise AssertionError("pruning lost a single-byte piece")
        set_cell_scores(self.cells, self._terminal, self._logp()[self._terminal_piece])
        cells = self.engine.share(self.cells)
        with self.progress.phase(description, total, unit="pieces", transient=True) as advance:
            for batch, part in self.engine.map(resegment_pieces, batches, self._links, cells, self.n):
                counter += part
                advance(batch.size)
        return counter

    def _candidate_batches(self, idx: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> Iterable[PieceRun]:
        """The candidates ``idx`` (weighted by ``counts``) as piece runs of about TASK_BYTES."""
        from ..kernels.runs import gather_pieces

        lengths = self.lengths[idx]
        ends = np.cumsum(lengths)
        start = 0
        while start < len(idx):
            stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + TASK_BYTES, side="right"))
            stop = min(max(stop, start + 1), len(idx))
            which = idx[start:stop]
            yield PieceRun(*gather_pieces(which, np.zeros(self.n, np.uint64), counts, self.offsets[:-1],
                                          self.lengths, self.arena))
            start = stop

    # -- steps --------------------------------------------------------------------------------
    def absorb(self, dropped: Iterable[PieceRun], total: int | None = None) -> None:
        """Step 5a: dropped pieces give their counts to their parts under the candidates."""
        self.counts += self._resegment(dropped, "split dropped", total)

    def prune_redundant(self) -> int:
        """Re-segment every present piece by the present set until the set stops shrinking;
        returns the number of rounds."""
        rounds = 0
        while True:
            rounds += 1
            size = self.size
            idx = np.flatnonzero(self.present)
            self.counts = self._resegment(self._candidate_batches(idx, self.counts), f"prune round {rounds}", len(idx))
            self.present = self.counts > 0
            if self.size == size:
                return rounds

    def shrink_to(self, n_pieces: int, rank: npt.NDArray[np.int64]) -> None:
        """Keep the single bytes and the most frequent multi-byte pieces (count desc, length desc,
        bytes asc) up to ``n_pieces``; the others are re-segmented by the kept ones."""
        idx = np.flatnonzero(self.present)
        lengths = self.lengths[idx]
        order = np.lexsort((rank[idx], -lengths, -self.counts[idx], lengths > 1))
        keep, drop = idx[order[:n_pieces]], idx[order[n_pieces:]]
        self.present = np.zeros(self.n, dtype=np.bool_)
        self.present[keep] = True
        weights = self.counts.copy()
        self.counts = np.where(self.present, self.counts, 0)
        self.counts += self._resegment(self._candidate_batches(drop, weights), "split dropped", len(drop))

    @property
    def size(self) -> int:
        return int(self.present.sum())

    def result(self) -> dict[bytes, int]:
        idx = np.flatnonzero(self.present)
        return {self.piece(i): int(c) for i, c in zip(idx.tolist(), self.counts[idx].tolist())}
