"""The canonical byte-level distribution: only the token sequences the tokenizer itself
produces, for a Viterbi (Unigram) tokenizer.

Definition. A token sequence T is *canonical* when it is the tokenizer's encoding of its own
bytes. For the next byte b after the bytes x (the prompt's last chunk; the chunks before it are
encoded on their own and given as context)::

    M(x b) = sum over canonical T whose bytes start with x b, all of whose tokens but the last
             end inside x b, of P(T | context)
    P(b | x) = M(x b) / sum_b' M(x b')

Why it is tractable. The tokenizer's back-pointer at a byte position (the start of the best last
piece, the earliest on a tie) depends only on the bytes before it, and a segmentation is the
encoding of its bytes exactly when each of its token ends has its token's start as back-pointer.
So every token of T but the last one is fixed by x: the tokens before a position j are the chain
of back-pointers from j, one history per position, and the dynamic program carries one state per
byte position (:mod:`bytepiece.kernels.canonical_dp`). The last token t, from j into bytes not
seen yet, is canonical iff three local conditions hold (A: ``[t]`` is a best segmentation of t;
B, C: no piece crossing j does better; see :mod:`bytepiece.kernels.canonical`), checked against a
table of the best segmentation score of every suffix of every piece. The candidates a crossing
piece rules out at j are listed once per position (:meth:`CanonicalTables.exclusions`) and
subtracted from the range sums, which already leave out the pieces condition A rejects.

Ties: the tables add scores in another order than the tokenizer, so a comparison within 1e-9 of a
tie (two segmentations with the same pieces in another order, as in a run of spaces) is settled
by replaying the tokenizer's own sums; the kept sequences are exactly the tokenizer's. Pieces
containing a newline followed by another byte cannot be produced (chunks end after newline runs)
and never compete.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..kernels import canonical as K
from ..kernels import canonical_dp as DP
from ..kernels.byterange import KNView, SortedVocab
from .context import last_tokens
from .cursor import Cursor
from .generic import Distributions
from .vocab import VocabIndex

__all__ = ["CanonicalCursor", "CanonicalTables"]

_BARRIER = re.compile(rb"\n[^\n]")


class CanonicalTables:
    """What canonicality needs from a tokenizer, once: its scores in rank order, the best
    segmentation score of every piece suffix, which pieces can be produced at all."""

    def __init__(self, tokenizer: Any, index: VocabIndex, vocab: SortedVocab) -> None:
        scores = getattr(tokenizer, "scores", None)
        if scores is None:
            raise InputError("tokenizations='canonical' needs a Viterbi tokenizer with piece scores "
                             "(tokenizer.scores, as a bytepiece Tokenizer has); use 'stable' or 'all' for this one")
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 1 or len(vocab.rank_id) and scores.shape[0] <= int(vocab.rank_id.max()):
            raise InputError(f"tokenizer.scores has shape {scores.shape}; expected one score per piece id")
        self.vocab = vocab
        self.score_r = np.ascontiguousarray(scores[vocab.rank_id])
        self.barrier = np.array([_BARRIER.search(p) is not None for p in index.sorted_pieces()], dtype=np.bool_)
        self.beta, self.boff, self.keep, tie = K.piece_tables(vocab.sb, vocab.so, vocab.max_len, self.score_r,
                                                              self.barrier)
        self.ties = np.flatnonzero(tie)  # condition A within rounding: checked in context at every position
        self.slo, self.shi, self.order, self.hval = K.suffix_tables(vocab.sb, vocab.so, vocab.max_len, self.score_r,
                                                                    self.beta, self.boff, self.keep)
        n = len(vocab.rank_id)
        self._stamp = np.zeros(n, dtype=np.int64)
        self._gen = 0
        self._out = np.empty(n, dtype=np.int64)
        self._near = np.empty(n, dtype=np.int64)

    def exclusions(self, data: npt.NDArray[np.uint8], best: npt.NDArray[np.float64], j: int) -> npt.NDArray[np.int64]:
        """Sorted ranks of the kept pieces that cannot be the last token starting at position j
        of ``data`` (a chunk from its start; ``best``: the Viterbi best score of every position up
        to j). A candidate whose score margin is a rounding error away from a tie is decided by
        running the tokenizer's Viterbi over ``data[:j]`` and it (its float sums break the tie)."""
        self._gen += 1
        V = self.vocab
        cnt, nn = K.exclusions(V.sb, V.so, V.max_len, self.score_r, self.boff, self.keep, self.barrier, self.slo,
                               self.shi, self.order, self.hval, data, best, j, self._stamp, self._gen, self._out,
                               self._near)
        near = self._near[:nn]
        if len(self.ties):
            near = np.concatenate([near, self.ties[self._stamp[self.ties] != self._gen]])
        if not len(near):
            return np.sort(self._out[:cnt])
        k = K.ruled_out(V.sb, V.so, V.max_len, self.score_r, self.barrier, data, best, j, near, self._out[cnt:])
        return np.sort(self._out[: cnt + k])


class _Positions:
    """Per byte position: the Viterbi best score, back-pointer and last token id (arrays that grow)."""

    def __init__(self, size: int) -> None:
        cap = max(size + 1, 64)
        self.best = np.full(cap, -np.inf)
        self.back = np.full(cap, -1, dtype=np.int64)
        self.tok = np.full(cap, -1, dtype=np.int32)
        self.best[0] = 0.0

    def reserve(self, size: int) -> None:
        if size + 1 > len(self.best):
            cap = max(size + 1, 2 * len(self.best))
            self.best = np.concatenate([self.best, np.full(cap - len(self.best), -np.inf)])
            self.back = np.concatenate([self.back, np.full(cap - len(self.back), -1, dtype=np.int64)])
            self.tok = np.concatenate([self.tok, np.full(cap - len(self.tok), -1, dtype=np.int32)])


class KNChains:
    """Kneser-Ney states of the back-pointer chains, and next-byte masses from them (kernels)."""

    def __init__(self, full: KNView, masked: KNView, keep: npt.NDArray[np.bool_], context: list[int]) -> None:
        self._full = full
        self._masked = masked
        self._keep = keep
        self._mark = np.zeros(len(keep), dtype=np.bool_)
        c = max(full.order - 1, 1)
        self.ctx = np.zeros((64, c), dtype=np.int32)
        self.clen = np.zeros(64, dtype=np.int32)
        self.lmass = np.full(64, -np.inf)
        self._start(np.array(last_tokens(context, full.order - 1), dtype=np.int32))

    def _start(self, first: npt.NDArray[np.int32]) -> None:
        from ..kernels import bytedp as D

        S = D.make_state(1, 1, 1, self._full.order)
        D.start(self._full, S, first)
        n = int(S.clen[0, 0])
        self.ctx[0, :n] = S.ctx[0, 0, :n]
        self.clen[0] = n
        self.lmass[0] = 0.0

    def extend(self, pos: _Positions, t0: int, t1: int) -> None:
        if t1 + 1 > len(self.lmass):
            cap = max(t1 + 1, 2 * len(self.lmass))
            self.ctx = np.concatenate([self.ctx, np.zeros((cap - len(self.ctx), self.ctx.shape[1]), np.int32)])
            self.clen = np.concatenate([self.clen, np.zeros(cap - len(self.clen), np.int32)])
            self.lmass = np.concatenate([self.lmass, np.full(cap - len(self.lmass), -np.inf)])
        DP.kn_chain(self._full, pos.back, pos.tok, t0, t1, self.ctx, self.clen, self.lmass)

    def masses(self, starts: npt.NDArray[np.int64], weights: npt.NDArray[np.float64], m: int,
               lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64], excl: npt.NDArray[np.int64],
               excl_off: npt.NDArray[np.int64], vocab: SortedVocab) -> tuple[npt.NDArray[np.float64], float]:
        """Next-byte masses at position m of the pieces ``lo[i]:hi[i]`` after the state at
        ``starts[i]`` (weighted), without each one's ruled-out ranks; and the mass of the pieces
        that end exactly at m."""
        out = np.zeros(256, dtype=np.float64)
        ending = DP.kn_buckets(vocab, self._masked, self._keep, np.ascontiguousarray(self.ctx[starts]),
                              np.ascontiguousarray(self.clen[starts]), weights, starts, m, lo, hi, excl, excl_off,
                              self._mark, out)
        return out, float(ending)


class GenericChains:
    """Histories of the back-pointer chains under any LM, and next-byte masses from them."""

    def __init__(self, dists: Distributions, keep: npt.NDArray[np.bool_], context: list[int]) -> None:
        self._dists = dists
        self._keep = keep
        self.hist: list[tuple[int, ...] | None] = [tuple(context)]
        self.lmass = [0.0]

    def extend(self, pos: _Positions, t0: int, t1: int) -> None:
        del self.hist[t0 + 1:], self.lmass[t0 + 1:]
        for t in range(t0 + 1, t1 + 1):
            j = int(pos.back[t])
            prev = self.hist[j] if j >= 0 else None
            if prev is None or self.lmass[j] == -math.inf:
                self.hist.append(None)
                self.lmass.append(-math.inf)
                continue
            tid = int(pos.tok[t])
            p = float(self._dists([prev])[0][tid])
            self.hist.append(prev + (tid,))
            self.lmass.append(self.lmass[j] + math.log(p) if p > 0 else -math.inf)

    def masses(self, starts: npt.NDArray[np.int64], weights: npt.NDArray[np.float64], m: int,
               lo_: npt.NDArray[np.int64], hi_: npt.NDArray[np.int64], excl: npt.NDArray[np.int64],
               excl_off: npt.NDArray[np.int64], vocab: SortedVocab) -> tuple[npt.NDArray[np.float64], float]:
        """As :meth:`KNChains.masses`, from full next-token distributions."""
        out = np.zeros(256, dtype=np.float64)
        ending = 0.0
        for i, (s, w) in enumerate(zip(starts.tolist(), weights.tolist())):
            hist = self.hist[s]
            lo, hi = int(lo_[i]), int(hi_[i])
            if w == 0.0 or hist is None or lo >= hi:
                continue
            p = self._dists([hist])[0]
            ok = self._keep[lo:hi].copy()
            ruled = excl[excl_off[i]:excl_off[i + 1]]
            ok[ruled[(ruled >= lo) & (ruled < hi)] - lo] = False
            d = m - s
            lengths = vocab.so[lo + 1:hi + 1] - vocab.so[lo:hi]
            probs = p[vocab.rank_id[lo:hi]] * ok
            ending += w * float(probs[lengths == d].sum()) if d else 0.0
            longer = lengths > d
            nxt = vocab.sb[vocab.so[lo:hi][longer] + d]
            out += w * np.bincount(nxt, weights=probs[longer], minlength=256)
        return out, ending


class CanonicalCursor(Cursor):
    """The canonical distribution after a token context: ``data`` must start where the tokenizer
    starts a segmentation (a chunk start), so that its Viterbi pass starts there too."""

    def __init__(self, tables: CanonicalTables, chains: KNChains | GenericChains, data: bytes) -> None:
        super().__init__(data, 0)
        self._tables = tables
        self._V = tables.vocab
        self._chains = chains
        self._pos = _Positions(len(data))
        self._buf = np.frombuffer(bytes(data), dtype=np.uint8).copy()
        self._excl: dict[int, npt.NDArray[np.int64]] = {}
        self._through: int | None = None
        self._advance(0)

    def _advance(self, t0: int) -> None:
        """Viterbi and chain states for the positions after t0 (the bytes are in ``_data``)."""
        t1 = len(self._data)
        if t1 <= t0:
            return
        V = self._V
        self._pos.reserve(t1)
        if len(self._buf) < t1:
            self._buf = np.resize(self._buf, max(t1, 2 * len(self._buf)))
        self._buf[t0:t1] = np.frombuffer(bytes(self._data[t0:t1]), dtype=np.uint8)
        DP.viterbi(V.sb, V.so, V.rank_id, V.max_len, self._tables.score_r, self._tables.barrier, self._buf[:t1], t0,
                  t1, self._pos.best, self._pos.back, self._pos.tok)
        self._chains.extend(self._pos, t0, t1)

    def tokens(self) -> list[int]:
        """The tokenizer's encoding of the bytes so far, as this cursor's Viterbi pass finds it
        (the chain of back-pointers from the end); empty if no segmentation reaches the end."""
        out = []
        t = len(self._data)
        while t > 0:
            if self._pos.back[t] < 0:
                return []
            out.append(int(self._pos.tok[t]))
            t = int(self._pos.back[t])
        return out[::-1]

    def _exclusions(self, j: int) -> npt.NDArray[np.int64]:
        got = self._excl.get(j)
        if got is None:
            got = self._tables.exclusions(self._buf[: len(self._data)], self._pos.best, j)
            self._excl[j] = got
        return got

    def _masses(self, through: int | None = None) -> tuple[npt.NDArray[np.float64], float, float]:
        """Next-byte masses, the mass of the pieces ending here, and the log scale of both, of
        the sequences with a token boundary at byte ``through`` (default: :meth:`assume_boundary`'s,
        or all of them)."""
        through = self._through if through is None else through
        m = len(self._data)
        a = max(0, m - self._V.max_len + 1, through or 0)
        lo = np.empty(m - a + 1, dtype=np.int64)
        hi = np.empty(m - a + 1, dtype=np.int64)
        DP.window_ranges(self._V.sb, self._V.so, self._buf, a, m, lo, hi)
        lm = np.asarray(self._chains.lmass[a : m + 1], dtype=np.float64)
        ok = (lm > -np.inf) & (hi > lo)
        if through is not None:
            ok &= np.array([self._passes(a + i, through) for i in range(len(ok))], dtype=np.bool_)
        live = np.flatnonzero(ok)
        if len(live) == 0:
            return np.zeros(256), 0.0, -math.inf
        top = float(lm[live].max())
        weights = np.exp(lm[live] - top)
        parts = [self._exclusions(a + int(s)) for s in live]
        excl = np.concatenate(parts)
        off = np.zeros(len(live) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in parts], out=off[1:])
        out, ending = self._chains.masses(live + a, weights, m, lo[live], hi[live], excl, off, self._V)
        return out, ending, top

    def probs(self) -> npt.NDArray[np.float64]:
        out, _, _ = self._masses()
        total = out.sum()
        return out / total if total > 0 else out

    def _passes(self, j: int, through: int) -> bool:
        """Whether the chain of back-pointers from position j has a token boundary at ``through``."""
        back = self._pos.back
        while j > through:
            j = int(back[j])
        return j == through

    def assume_boundary(self, n: int | None) -> None:
        """From now on keep only the sequences with a token boundary at byte ``n`` (None: all of
        them again): the distribution a model has when told where a token starts."""
        if n is not None and not 0 <= n <= len(self._data):
            raise InputError(f"a boundary must be at 0..{len(self._data)} bytes, not {n}")
        self._through = n

    def boundary_split(self) -> tuple[npt.NDArray[np.float64], float]:
        """How the next byte splits between the two ways the text can go on: ``(P(next byte |
        a token starts here), P(a token starts here))``; the rest of the mass is on sequences
        whose last token started earlier and goes on past this position."""
        out, _, top = self._masses()
        here, _, top_here = self._masses(through=len(self._data))
        total, at = float(out.sum()), float(here.sum())
        if total <= 0 or at <= 0:
            return np.zeros(256), 0.0
        return here / at, at * math.exp(top_here - top) / total

    def log_mass(self) -> float:
        """Natural log of the summed probability of the canonical token sequences that cover the
        bytes so far with their last token (0 with no bytes)."""
        if not self._data:
            return 0.0
        out, ending, top = self._masses()
        total = float(out.sum()) + ending
        return top + math.log(total) if total > 0 else -math.inf

    def _append(self, byte: int) -> None:
        self._advance(len(self._data) - 1)

    def _back_to(self, n: int) -> None:
        for j in [j for j in self._excl if j > n]:
            del self._excl[j]
        if self._through is not None and self._through > n:
            self._through = None
