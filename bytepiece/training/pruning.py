"""Piece pruning (DESIGN section 5, steps 5 and 6) over numpy arrays, on the engine.

The *candidates* are every piece that can still end up in a vocabulary: all single bytes, and
the pieces no longer than ``max_piece_length`` counted at least ``min_count`` times. They are
kept in sorted order and get one trie of their reversed bytes, built once (a double array, or
for a few thousand candidates nested dicts: ``_PythonResegmenter``); each "tokenizer of the
kept pieces" is that trie with ``-inf`` scores for the candidates not kept. Scores are
``np.log(count) - np.log(total)`` computed by numpy exactly as the original computes them, so
Viterbi ties resolve the same way.

Re-segmentation (of the dropped pieces, and of the kept pieces in every redundancy round) is a
map over batches of pieces on the engine; each task returns a count vector over the candidates
and the vectors are added up, so results do not depend on the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..engine import Engine
from .spill import PieceRun
from ..kernels.segment import packed_cells, resegment_sorted, set_cell_scores
from ..kernels.stand_ins import small
from ..kernels.trie import build_trie_arrays, lexicographic_order
from .dropped import sort_for_sharing
from ..progress import Advance, Progress

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


class _TrieResegmenter:
    """Re-segmentation by the kernels: one double-array trie of the candidates' reversed bytes,
    whose packed cells carry each round's scores, and tasks on the engine."""

    def __init__(self, arena: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], engine: Engine) -> None:
        n = len(offsets) - 1
        trie = build_trie_arrays(arena, offsets, np.arange(n, dtype=np.int32), reverse=True)
        # the double array lives on only in the packed cells, which carry each round's scores
        self.cells = packed_cells(trie.base_check)
        self.terminal = np.flatnonzero(trie.piece >= 0)  # the cell where each candidate ends ...
        self.terminal_piece = trie.piece[self.terminal]  # ... and which candidate that is
        self.links = engine.share(TrieLinks(trie.pair_cells(), trie.piece))
        self.engine = engine
        self.n = n

    def counts(self, batches: Iterable[PieceRun], logp: npt.NDArray[np.float64], advance: Advance
               ) -> npt.NDArray[np.int64]:
        counter = np.zeros(self.n, dtype=np.int64)
        set_cell_scores(self.cells, self.terminal, logp[self.terminal_piece])
        cells = self.engine.share(self.cells)
        for batch, part in self.engine.map(resegment_pieces, batches, self.links, cells, self.n):
            counter += part
            advance(batch.size)
        return counter


class _PythonResegmenter:
    """Re-segmentation in plain Python, for up to ``PYTHON_CANDIDATES_MAX`` candidates, with
    ``resegment_sorted``'s choices exactly: the same walk back from each end position over a
    trie of reversed candidates (nested dicts), the same float64 sums and ``>=``, and the same
    reuse of the previous piece's work up to their common prefix.

    README's training job then compiles neither the trie construction nor the re-segmentation
    (5 s of a first run's CPU); in Python its 0.8 MB of dropped pieces take 0.4 s. A trie entry
    is ``[children, score, candidate]``, the score set each round (-inf where no candidate ends
    or the candidate is left out): a dict of suffixes took 2.7x as long, a separate score list
    1.5x; the first step from a list by byte (it never fails) saves another tenth."""

    def __init__(self, pieces: list[bytes]) -> None:
        root: dict[int, Any] = {}  # byte -> entry, an entry [children, score, candidate]
        self.entries: list[Any] = []
        entry: Any = None
        for i, piece in enumerate(pieces):  # candidates are never empty
            node = root
            for k in range(len(piece) - 1, -1, -1):
                entry = node.get(piece[k])
                if entry is None:
                    entry = node[piece[k]] = [{}, -math.inf, -1]
                node = entry[0]
            entry[2] = i
            self.entries.append(entry)
        self.root = root
        self.n = len(pieces)

    def counts(self, batches: Iterable[PieceRun], logp: npt.NDArray[np.float64], advance: Advance
               ) -> npt.NDArray[np.int64]:
        for entry, score in zip(self.entries, logp.tolist()):
            entry[1] = score
        counter = [0] * self.n
        first = [self.root[b] for b in range(256)]  # every byte is a candidate: the first step never fails
        best: list[float] = [0.0]
        back: list[int] = [0]
        tok: list[int] = [0]
        for batch in batches:
            bounds = batch.offsets.tolist()
            data = batch.arena.tobytes()
            longest = max(np.diff(batch.offsets).max(initial=0) + 1 - len(best), 0)
            best += [0.0] * longest
            back += [0] * longest
            tok += [0] * longest
            prev = b""
            for i, weight in enumerate(batch.counts.tolist()):
                piece = data[bounds[i]:bounds[i + 1]]
                n = len(piece)
                lo, hi = 0, min(n, len(prev))  # the common prefix, by halving
                while lo < hi:
                    mid = (lo + hi + 1) >> 1
                    if piece[:mid] == prev[:mid]:
                        lo = mid
                    else:
                        hi = mid - 1
                for e in range(lo + 1, n + 1):
                    s = start = e - 1
                    node, top, part = first[piece[s]]
                    top += best[s]
                    while s:  # shortest last piece first; >= keeps the longest on a tie
                        s -= 1
                        entry = node.get(piece[s])
                        if entry is None:
                            break
                        v = best[s] + entry[1]
                        if v >= top:
                            top, start, part = v, s, entry[2]
                        node = entry[0]
                    best[e], back[e], tok[e] = top, start, part
                j = n
                while j > 0:
                    counter[tok[j]] += weight
                    j = back[j]
                prev = piece
            advance(batch.size)
        return np.array(counter, dtype=np.int64)


#: up to this many candidates, and this many bytes of dropped pieces to re-segment, pruning
#: re-segments in Python (see ``_PythonResegmenter``: about 0.5 s a MB, where the kernels take
#: 5 s to compile, or 40 ms once a larger corpus's warm-up has compiled them)
PYTHON_CANDIDATES_MAX = 1 << 15
PYTHON_DROPPED_BYTES_MAX = 1 << 20


class PieceSet:
    """Candidates of the pruning steps, their re-segmenter and their current counts."""

    def __init__(self, candidates: PieceRun, *, engine: Engine, progress: Progress | None = None,
                 dropped_bytes: int = 0) -> None:
        """``dropped_bytes``: the bytes of the dropped pieces that :meth:`absorb` will get."""
        self.engine = engine
        self.progress = progress or Progress(False)
        candidates = sort_for_sharing(candidates)
        self.offsets = candidates.offsets
        self.arena = candidates.arena
        self.lengths = np.diff(candidates.offsets)
        n = candidates.size
        self._resegmenter: _TrieResegmenter | _PythonResegmenter
        if small(n, PYTHON_CANDIDATES_MAX) and small(dropped_bytes, PYTHON_DROPPED_BYTES_MAX):
            self._resegmenter = _PythonResegmenter([self.piece(i) for i in range(n)])
        else:
            self._resegmenter = _TrieResegmenter(self.arena, self.offsets, engine)
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
        # Every byte must stay a piece: a text no present piece spells would end its path on a
        # cell without a piece, and resegment_sorted's unchecked counter index would be -1.
        if len(self._single_bytes) != 256 or not self.present[self._single_bytes].all():
            raise AssertionError("pruning lost a single-byte piece")
        with self.progress.phase(description, total, unit="pieces", transient=True) as advance:
            return self._resegmenter.counts(batches, self._logp(), advance)

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
