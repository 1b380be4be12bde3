"""Piece pruning (DESIGN section 5, steps 5 and 6) over numpy arrays.

Pieces live in a byte ``arena`` with ``starts``/``lengths``/``counts`` arrays. Every piece that
can still end up in a vocabulary (all single bytes, and pieces no longer than
``max_piece_length`` counted at least ``min_count`` times) is a *candidate*; candidates get one
double-array trie, built once, and each "tokenizer of the kept pieces" is that trie with ``-inf``
scores for the candidates not kept. Scores are ``np.log(count) - np.log(total)`` computed by numpy exactly
as the original computes them, so Viterbi ties resolve the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from ..kernels.segment import resegment
from ..kernels.trie import build_trie


class PieceSet:
    """Candidates of the pruning steps, their trie and their current counts."""

    def __init__(self, arena: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64],
                 lengths: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], *,
                 max_piece_length: int, min_count: int, workers: int = 1,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.arena, self.starts, self.lengths = arena, starts, lengths
        self.workers = max(1, int(workers))
        self.on_progress = on_progress
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        candidate = (lengths == 1) | ((lengths <= max_piece_length) & (counts >= min_count))
        self.cand = np.flatnonzero(candidate).astype(np.int64)
        dropped = np.flatnonzero(~candidate).astype(np.int64)
        n = len(self.cand)
        self.trie = build_trie([arena[s:s + k].tobytes() for s, k in zip(starts[self.cand].tolist(), lengths[self.cand].tolist())],
                               np.arange(n, dtype=np.int32))
        self.counts = counts[self.cand].astype(np.int64)
        self.present = np.ones(n, dtype=np.bool_)
        # Step 5a: dropped pieces give their counts to their parts under the kept pieces.
        if len(dropped):
            self.counts += self._resegment(dropped, counts[dropped])

    # -- the primitive ------------------------------------------------------------------------
    def _scores(self) -> npt.NDArray[np.float64]:
        scores = np.full(len(self.cand), -np.inf)
        kept = self.counts[self.present]
        scores[self.present] = np.log(kept) - np.log(int(kept.sum()))
        return scores

    def _resegment(self, which: npt.NDArray[np.int64], weights: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Counts each candidate gets when pieces ``which`` (arena indices) with ``weights`` are
        segmented by the tokenizer of the present candidates."""
        n = len(self.cand)
        logp = self.trie.cell_values(self._scores(), -np.inf)
        args = (self.trie.base_check, self.trie.piece, logp, self.arena, self.starts, self.lengths)
        if self._pool is None or len(which) < 20000:
            counter = np.zeros(n, dtype=np.int64)
            resegment(*args, which, weights, counter)
        else:
            parts = np.array_split(np.arange(len(which)), self.workers)
            counters = [np.zeros(n, dtype=np.int64) for _ in parts]
            futures = [self._pool.submit(resegment, *args, which[p], weights[p], c) for p, c in zip(parts, counters)]
            for f in futures:
                f.result()
            counter = counters[0]
            for c in counters[1:]:
                counter += c
        if self.on_progress is not None:
            self.on_progress(len(which))
        return counter

    # -- steps --------------------------------------------------------------------------------
    def prune_redundant(self) -> int:
        """Re-segment every present piece by the present set until the set stops shrinking;
        returns the number of rounds."""
        rounds = 0
        while True:
            rounds += 1
            size = int(self.present.sum())
            idx = np.flatnonzero(self.present)
            counter = self._resegment(self.cand[idx], self.counts[idx])
            self.counts = counter
            self.present = counter > 0
            if int(self.present.sum()) == size:
                return rounds

    def shrink_to(self, n_pieces: int, rank: npt.NDArray[np.int64]) -> None:
        """Keep the single bytes and the most frequent multi-byte pieces (count desc, length desc,
        bytes asc) up to ``n_pieces``; the others are re-segmented by the kept ones."""
        idx = np.flatnonzero(self.present)
        lengths = self.lengths[self.cand[idx]]
        order = np.lexsort((rank[idx], -lengths, -self.counts[idx], lengths > 1))
        keep, drop = idx[order[:n_pieces]], idx[order[n_pieces:]]
        self.present = np.zeros(len(self.cand), dtype=np.bool_)
        self.present[keep] = True
        weights = self.counts[drop].copy()
        self.counts = np.where(self.present, self.counts, 0)
        self.counts += self._resegment(self.cand[drop], weights)

    @property
    def size(self) -> int:
        return int(self.present.sum())

    def current(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(arena indices, counts) of the present pieces."""
        idx = np.flatnonzero(self.present)
        return self.cand[idx], self.counts[idx].copy()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def lexicographic_rank(pieces: list[bytes]) -> npt.NDArray[np.int64]:
    order = sorted(range(len(pieces)), key=pieces.__getitem__)
    rank = np.empty(len(pieces), dtype=np.int64)
    rank[np.array(order, dtype=np.int64)] = np.arange(len(pieces), dtype=np.int64)
    return rank
