"""n-best segmentations, scores, exact samples with scores, and the entropy of the segmentation
distribution (what sentencepiece calls ``NBestEncode``, ``SampleEncodeAndScore`` and
``CalculateEntropy``), all exact and over the same chunking as ``Tokenizer.encode``.

The probability model: a segmentation S of a text has log probability ``sum(log p(piece))``
over its pieces (chunk by chunk, as ``encode`` segments them); sampling and the entropy use the
distribution ``q(S)`` proportional to ``p(S) ** alpha`` over the segmentations of the text.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels import lattice as K
from ..options import Seed, kernel_seed
from ..units import format_size
from ..vocab import FIRST_PIECE_ID
from .core import Segmenter, Text

#: most segmentations n-best lists and samples may ask for at once (their arrays grow with it)
MAX_N = 1 << 20
#: memory the n-best lists may take, and what they take per position and list entry
MAX_LIST_BYTES = 4 << 30
_LIST_BYTES = 52

#: Segmentations are (ids, log probability) pairs.
Scored = tuple[list[int], float]


class Lattice:
    """Per-tokenizer state of the lattice computations: the core's trie of reversed pieces and
    per-cell scores (shared with ``encode``) and alpha-scaled copies."""

    def __init__(self, core: Segmenter) -> None:
        self.core = core
        self.bc = core.base_check
        self.piece = core.cell_piece
        self.scores = core.cell_scores  # log p per cell, -inf where no piece ends
        self._scaled: OrderedDict[float, npt.NDArray[np.float64]] = OrderedDict()
        self._has_child: npt.NDArray[np.bool_] | None = None

    def scaled(self, alpha: float) -> npt.NDArray[np.float64]:
        """alpha * log p per cell (-inf where no piece ends, also for alpha = 0)."""
        values = self._scaled.get(alpha)
        if values is None:
            with np.errstate(over="ignore", invalid="ignore"):
                values = self.core.cell_values(alpha * self.core.scores, -np.inf)
            self._scaled[alpha] = values
            if len(self._scaled) > 8:
                self._scaled.popitem(last=False)
        return values

    def data(self, text: Text) -> npt.NDArray[np.uint8]:
        if not isinstance(text, (str, bytes, bytearray, memoryview)):
            raise InputError(f"expected str or bytes, got {type(text).__name__}")
        return np.frombuffer(self.core.normalize(text), dtype=np.uint8)

    # -- n-best ---------------------------------------------------------------------------------
    def viterbi_lattice(self, data: npt.NDArray[np.uint8], n: int):
        """Run the k-best kernel; returns its arrays and the number of segmentations found."""
        L = len(data)
        sc = np.empty((L + 1, n), np.float64)
        ps = np.empty((L + 1, n), np.int64)
        pr = np.empty((L + 1, n), np.int64)
        cl = np.empty((L + 1, n), np.int32)
        cnt = np.zeros(L + 1, np.int64)
        csc = np.zeros((L + 1, n), np.float64)
        cprev = np.zeros((L + 1, n), np.int64)
        crank = np.zeros((L + 1, n), np.int64)
        cap = K.combine_capacity(n)
        count = K.kbest_lattice(self.bc, self.scores, self.piece, data, n, sc, ps, pr, cl, cnt, csc, cprev, crank,
                                np.empty(cap, np.float64), np.empty(cap, np.int64), np.empty(cap, np.int64))
        return ps, pr, cl, cprev, crank, csc, count

    def viterbi(self, data: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], float]:
        """(back pointers, piece ids, total log probability) of the best segmentation."""
        back = np.empty(len(data) + 1, np.int64)
        tok = np.empty(len(data) + 1, np.int32)
        total = K.viterbi(self.bc, self.scores, self.piece, data, back, tok)
        return back, tok, total

    def nbest(self, text: Text, n: int) -> list[Scored]:
        if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
            raise InputError(f"n must be a positive integer (how many segmentations), got {n!r}")
        asked = int(n)
        n = min(asked, MAX_N)
        data = self.data(text)
        L = len(data)
        if L == 0:
            return [([], 0.0)]
        if n > 1:
            n = min(n, self.count_bound(data))
            need = (L + 1) * n * _LIST_BYTES
            if need > MAX_LIST_BYTES:
                about = "about" if n == asked else "at least"
                raise InputError(f"n={asked:,} best segmentations of {L:,} bytes need {about} {format_size(need)}; ask "
                                 f"for at most {max(1, MAX_LIST_BYTES // ((L + 1) * _LIST_BYTES)):,} (or a shorter text)")
        if n == 1:
            back, tok, total = self.viterbi(data)
            return [(K.viterbi_path(back, tok, L).tolist(), total)]
        ps, pr, cl, cprev, crank, csc, count = self.viterbi_lattice(data, n)
        out = np.empty(count * L, np.int32)
        bounds = np.empty(count + 1, np.int64)
        K.kbest_paths(ps, pr, cl, cprev, crank, L, count, out, bounds)
        ids = out.tolist()
        b = bounds.tolist()
        totals = csc[L, :count].tolist()
        return [(ids[b[r] : b[r + 1]], totals[r]) for r in range(count)]

    # -- scores ---------------------------------------------------------------------------------
    def count_bound(self, data: npt.NDArray[np.uint8]) -> int:
        """An upper bound on the number of segmentations of ``data`` (capped at ``MAX_N``): the
        n-best arrays are sized by ``min(n, bound)``, so asking for 10**9 costs nothing extra."""
        L = len(data)
        count = np.zeros(L + 1, np.float64)
        count[0] = 1.0
        longest = self.core.max_piece_length
        for e in range(1, L + 1):
            count[e] = min(count[max(0, e - longest):e].sum(), float(MAX_N))
        return max(1, int(count[L]))

    def score(self, text: Text, ids: Sequence[int] | npt.NDArray[np.integer]) -> float:
        core = self.core
        data = core.normalize(text)
        ids = np.asarray(ids).tolist() if isinstance(ids, np.ndarray) else list(ids)
        first_special = core.first_special_id
        table = core.id_bytes
        scores = core.scores
        for i in ids:
            if not (isinstance(i, (int, np.integer)) and FIRST_PIECE_ID <= i < first_special):
                raise InputError(f"id {i!r} is not a piece id ({FIRST_PIECE_ID}..{first_special - 1}); score() takes "
                                 "the ids of a segmentation, without <bos>/<eos> or special tokens")
        spelled = b"".join(table[i] for i in ids)
        if spelled != data:
            raise InputError(f"the ids spell {spelled[:40]!r}{'...' if len(spelled) > 40 else ''}, not the text "
                             f"{data[:40]!r}{'...' if len(data) > 40 else ''} (after normalization); pass ids of this text")
        total = 0.0
        chunk = 0.0
        pos = 0
        arr = np.frombuffer(data, dtype=np.uint8)
        end = int(K.chunk_end(arr, 0, len(arr))) if len(arr) else 0
        for i in ids:
            chunk += scores[i]
            pos += len(table[i])
            if pos == end:
                total += chunk
                chunk = 0.0
                end = int(K.chunk_end(arr, end, len(arr)))
            elif pos > end:
                raise InputError(f"piece {table[i]!r} runs across the end of a line (byte {end}); encode segments "
                                 "each line separately, so no segmentation it considers has such a piece")
        return float(total)

    # -- sampling and entropy -------------------------------------------------------------------
    def _alpha(self, alpha: float) -> float:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not (0 <= alpha < np.inf):
            raise InputError(f"alpha must be a finite number >= 0 (0: uniform over segmentations, 1: the model's "
                             f"own distribution), got {alpha!r}")
        if alpha * float(np.abs(self.core.scores).max()) > 1e300:
            raise InputError(f"alpha={alpha!r} is too large: alpha * log p overflows; use alpha <= 1e300 / "
                             f"{float(np.abs(self.core.scores).max()):.3g} (the distribution is then already Viterbi)")
        return float(alpha)

    def _forward(self, data, values):
        L = len(data)
        logz = np.empty(L + 1, np.float64)
        expect = np.empty(L + 1, np.float64)
        total_z, total_e = K.forward(self.bc, values, data, logz, expect)
        return logz, total_z, total_e

    def sample(self, text: Text, n: int, alpha: float, seed: Seed) -> list[Scored]:
        if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0):
            raise InputError(f"n must be a non-negative integer (how many samples), got {n!r}")
        if n > MAX_N:
            raise InputError(f"n must be at most {MAX_N:,} samples per call, got {n!r}; call sample() repeatedly")
        n = int(n)
        values = self.scaled(self._alpha(alpha))
        seed64 = kernel_seed(seed)
        data = self.data(text)
        L = len(data)
        if L == 0:
            return [([], 0.0) for _ in range(n)]
        logz, _, _ = self._forward(data, values)
        out = np.empty(n * L, np.int32)
        bounds = np.empty(n + 1, np.int64)
        totals = np.empty(n, np.float64)
        K.backward_sample(self.bc, values, self.scores, self.piece, data, logz, n, seed64, out, bounds, totals)
        ids = out.tolist()
        b = bounds.tolist()
        t = totals.tolist()
        return [(ids[b[i] : b[i + 1]], t[i]) for i in range(n)]

    def entropy(self, text: Text, alpha: float) -> float:
        values = self.scaled(self._alpha(alpha))
        data = self.data(text)
        if len(data) == 0:
            return 0.0
        _, total_z, total_e = self._forward(data, values)
        # H = log Z - E[alpha * log p(S)]; rounding can leave a tiny negative for a single path
        return max(0.0, float(total_z - total_e))

    # -- stable prefixes ------------------------------------------------------------------------
    def extends_past(self, data: bytes, q: int, k: int) -> bool:
        """Whether some piece starts with ``data[q:k]`` and is longer (a token starting at q
        could run past k)."""
        trie = self.core.forward_trie
        if self._has_child is None:
            check = trie.base_check[1::2]
            has_child = np.zeros(len(check), dtype=bool)
            has_child[check[check >= 0]] = True
            self._has_child = has_child
        bc = trie.base_check
        node = 0
        for c in data[q:k]:
            nxt = int(bc[2 * node]) + c
            if nxt >= len(self._has_child) or bc[2 * nxt + 1] != node:
                return False
            node = nxt
        return bool(self._has_child[node])
