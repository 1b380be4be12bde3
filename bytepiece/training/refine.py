"""Optional vocabulary refinement after BNLM training (DESIGN section 5, "Beyond the original").

The faithful BNLM trainer keeps its most frequent pieces. ``refine_vocabulary`` starts from
such a vocabulary (the seed) and alternates growing and pruning on the corpus with the model
the tokenizer decodes with, a unigram LM over pieces:

1. candidates: the seed pieces that fit ``max_piece_length`` (and, with ``ensure_unicode``, do
   not start with a UTF-8 continuation byte), plus all 256 single bytes, with the seed counts
   as starting probabilities;
2. ``grow_rounds`` times: segment the corpus (chunked exactly as the trainer chunks it) with
   the current pieces and add the ``grow`` most frequent pairs of adjacent pieces as new
   candidates (a batch of BPE-like merges); re-estimate the counts (``em_iterations`` EM steps:
   Viterbi counts by default, expected counts by forward-backward with ``hard=False``),
   dropping multi-byte pieces whose count falls below ``min_expected``; then, while more than
   the target remain, drop the pieces whose removal costs the least likelihood (the Unigram LM
   estimate: the piece's count times the log probability lost when its occurrences fall back
   to its best segmentation without it; at most a ``1 - shrink`` fraction per step);
3. at the target size, ``final_iterations`` Viterbi passes give the integer counts of the model
   (the counts its scores come from); pieces the Viterbi never uses get count 1.

Passes are map-reduce over jobs of a few MB on ``workers`` threads (the kernels release the
GIL); per-job results are combined in corpus order, so the result does not depend on
``workers``. The corpus is read once and kept in memory as chunked UTF-8 while it fits in
``cache_bytes``; beyond that every pass reads it again (streaming).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import InputError, TrainingError
from ..model import FIRST_PIECE_ID
from .corpus import DEFAULT_BATCH_BYTES, Corpus, Job, as_corpus, chunk_jobs

DEFAULT_CACHE_BYTES = 1 << 30



class _Jobs:
    """The corpus as (buffer, chunk bounds, lo, hi) jobs, cached in memory while it fits."""

    def __init__(self, source: Corpus, *, isolate_digits: bool, batch_bytes: int, cache_bytes: int) -> None:
        self.source = source
        self.batch_bytes = batch_bytes
        self.cache_bytes = cache_bytes
        self.isolate_digits = isolate_digits
        self.cached: list[Job] | None = None
        self.total_bytes = 0

    def _read(self) -> Iterator[Job]:
        return chunk_jobs(self.source, self.batch_bytes, self.isolate_digits)

    def __iter__(self) -> Iterator[Job]:
        if self.cached is not None:
            yield from self.cached
            return
        cache: list[Job] | None = []
        held = 0
        total = 0
        last_buf = None
        for job in self._read():
            if job[0] is not last_buf:
                last_buf = job[0]
                held += len(last_buf)
            total += int(job[1][job[3]] - job[1][job[2]])
            if cache is not None:
                if held <= self.cache_bytes:
                    cache.append(job)
                else:
                    cache = None
            yield job
        self.total_bytes = total
        self.cached = cache


def _map_jobs(jobs: _Jobs, workers: int, work: Callable[[Job], Any], reduce: Callable[[Any], None],
              progress: Callable[[int], None] | None) -> None:
    """``reduce(work(job))`` for every job, reduced in corpus order (results independent of workers)."""
    def done(job: Job, result: Any) -> None:
        reduce(result)
        if progress is not None:
            progress(int(job[1][job[3]] - job[1][job[2]]))

    if workers <= 1:
        for job in jobs:
            done(job, work(job))
        return
    window: list = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job in jobs:
            window.append((job, pool.submit(work, job)))
            if len(window) >= 2 * workers:
                j, f = window.pop(0)
                done(j, f.result())
        for j, f in window:
            done(j, f.result())


class _Vocab:
    """Pieces (index = id) with their float counts and the forward trie over them."""

    def __init__(self, pieces: list[bytes], counts: np.ndarray) -> None:
        from ..kernels.trie import build_trie

        self.pieces = pieces
        self.counts = counts
        self.trie = build_trie(pieces)
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        self.lengths = lengths
        self.starts = np.zeros(len(pieces), dtype=np.int64)
        np.cumsum(lengths[:-1], out=self.starts[1:])
        self.arena = np.frombuffer(b"".join(pieces), dtype=np.uint8)

    def log_probs(self) -> np.ndarray:
        c = np.maximum(self.counts, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(c) - np.log(c.sum())


def _expectation(vocab: _Vocab, jobs: _Jobs, workers: int, hard: bool,
                 progress: Callable[[int], None] | None) -> tuple[np.ndarray, float]:
    from ..kernels.unigram import expected_counts, viterbi_counts

    logp = vocab.log_probs()
    bc, piece = vocab.trie.base_check, vocab.trie.piece
    if hard:
        values = vocab.trie.cell_values(logp, -np.inf)
        kernel = viterbi_counts
    else:
        values = vocab.trie.cell_values(np.exp(logp), 0.0)
        kernel = expected_counts
    n = len(vocab.pieces)
    total = np.zeros(n, dtype=np.float64)
    loglik = [0.0]

    def work(job: Job):
        buf, bounds, lo, hi = job
        counts = np.zeros(n, dtype=np.float64)
        ll = kernel(bc, piece, values, buf, bounds, lo, hi, counts)
        return counts, ll

    def reduce(result) -> None:
        counts, ll = result
        np.add(total, counts, out=total)
        loglik[0] += ll

    _map_jobs(jobs, workers, work, reduce, progress)
    return total, loglik[0]


def _grow(vocab: _Vocab, jobs: _Jobs, workers: int, n_new: int, max_piece_length: int, ensure_unicode: bool,
          progress: Callable[[int], None] | None) -> _Vocab:
    """Add the ``n_new`` most frequent pairs of adjacent pieces in the best segmentations of the
    corpus (at most ``max_piece_length`` bytes, seen at least twice, not already pieces; with
    ``ensure_unicode`` not starting with a UTF-8 continuation byte), with
    their pair counts as starting counts."""
    from ..kernels.unigram import viterbi_pairs

    n = len(vocab.pieces)
    values = vocab.trie.cell_values(vocab.log_probs(), -np.inf)
    bc, piece = vocab.trie.base_check, vocab.trie.piece
    parts: list[np.ndarray] = []

    def work(job: Job) -> np.ndarray:
        buf, bounds, lo, hi = job
        keys = viterbi_pairs(bc, piece, values, buf, bounds, lo, hi, n)
        keys.sort()
        return keys

    _map_jobs(jobs, workers, work, parts.append, progress)
    if not parts:
        return vocab
    keys, counts = np.unique(np.concatenate(parts), return_counts=True)
    del parts
    left, right = keys // n, keys % n
    fits = (counts >= 2) & (vocab.lengths[left] + vocab.lengths[right] <= max_piece_length)
    if ensure_unicode:  # no piece of several bytes may start with a UTF-8 continuation byte
        first = vocab.arena[vocab.starts[left]]
        fits &= (first < 0x80) | (first >= 0xC0)
    keys, counts, left, right = keys[fits], counts[fits], left[fits], right[fits]
    order = np.lexsort((keys, -counts))  # most frequent first; ties by key (deterministic)
    present = set(vocab.pieces)
    new: dict[bytes, float] = {}
    pieces = vocab.pieces
    for i in order.tolist():
        if len(new) >= n_new:
            break
        p = pieces[int(left[i])] + pieces[int(right[i])]
        if p in present:
            continue
        new[p] = new.get(p, 0.0) + float(counts[i])
    merged = dict(zip(pieces, vocab.counts.tolist()))
    merged.update(new)
    ordered = sorted(merged, key=lambda q: (len(q), q))
    return _Vocab(ordered, np.array([merged[q] for q in ordered], dtype=np.float64))


def _check_seed(seed_counts: Mapping[bytes, Any], max_piece_length: int, ensure_unicode: bool) -> dict[bytes, float]:
    if not isinstance(seed_counts, Mapping):
        raise InputError("seed_counts must be a mapping of piece bytes to counts (e.g. dict(zip(model.pieces, model.counts)))")
    out: dict[bytes, float] = {}
    for p, c in seed_counts.items():
        if not isinstance(p, (bytes, bytearray)) or not p:
            raise InputError(f"seed pieces must be non-empty bytes, got {p!r}")
        try:
            c = float(c)
        except (TypeError, ValueError):
            raise InputError(f"seed count of {bytes(p)!r} must be a number, got {c!r}") from None
        if not math.isfinite(c) or c < 0:
            raise InputError(f"seed count of {bytes(p)!r} must be a finite number >= 0, got {c!r}")
        p = bytes(p)
        if len(p) > 1 and (len(p) > max_piece_length or (ensure_unicode and 0x80 <= p[0] < 0xC0)):
            continue
        out[p] = c
    for b in range(256):
        key = bytes([b])
        out[key] = max(out.get(key, 0.0), 1.0)
    return out


def refine_vocabulary(
    corpus: Any,
    seed_counts: Mapping[bytes, Any],
    size: int,
    *,
    workers: int = 1,
    max_piece_length: int = 36,
    ensure_unicode: bool = True,
    isolate_digits: bool = False,
    shrink: float = 0.75,
    em_iterations: int = 1,
    final_iterations: int = 1,
    min_expected: float = 0.5,
    hard: bool = True,
    grow: int | None = None,
    grow_rounds: int = 6,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: Callable[[int], None] | None = None,
    stats: dict | None = None,
) -> dict[bytes, int]:
    """Refine a candidate vocabulary into at most ``size - 3`` pieces (the model's vocabulary
    size counts the three special ids) by growing it with frequent adjacent pairs and pruning
    it by unigram likelihood loss on ``corpus`` (see the module docstring).

    ``corpus``: a :class:`~bytepiece.training.corpus.Corpus` or anything ``Trainer.train``
    accepts (paths, texts); it is chunked exactly as the trainer chunks it (pass the trainer's
    ``isolate_digits``). ``seed_counts``: candidate pieces with counts used as the starting
    probabilities (for example the faithful BNLM model of the same size:
    ``dict(zip(model.pieces, model.counts))``; a larger BNLM seed measured no better).
    ``grow`` defaults to ``size // 4`` new candidates per round; ``grow=0`` only prunes.
    Returns positive integer counts for every kept piece, all 256 single bytes included, ready
    for :meth:`bytepiece.Model.from_counts`. ``progress(n)`` is called with the bytes of each
    processed job (every pass reads the whole corpus); ``stats``, if given, receives the
    number of passes, rounds, the final log likelihood and the pieces per round.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 256 + FIRST_PIECE_ID:
        raise InputError(f"size must be an integer >= {256 + FIRST_PIECE_ID} (256 bytes + 3 special ids), got {size!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be an integer >= 1, got {workers!r}")
    if not 0.0 < shrink < 1.0:
        raise InputError(f"shrink must be between 0 and 1 (the fraction of pieces kept per round), got {shrink!r}")
    if em_iterations < 1 or final_iterations < 1:
        raise InputError("em_iterations and final_iterations must be >= 1")
    if max_piece_length < 1:
        raise InputError(f"max_piece_length must be >= 1, got {max_piece_length!r}")
    target = int(size) - FIRST_PIECE_ID
    seed = _check_seed(seed_counts, max_piece_length, ensure_unicode)
    source, temporary = as_corpus(corpus) if not isinstance(corpus, Corpus) else (corpus, False)
    info: dict[str, Any] = {"rounds": [], "passes": 0}
    try:
        jobs = _Jobs(source, isolate_digits=isolate_digits, batch_bytes=batch_bytes, cache_bytes=cache_bytes)
        ordered = sorted(seed, key=lambda p: (len(p), p))
        vocab = _Vocab(ordered, np.array([seed[p] for p in ordered], dtype=np.float64))

        def estep(v: _Vocab, hard_step: bool) -> tuple[np.ndarray, float]:
            info["passes"] += 1
            return _expectation(v, jobs, workers, hard_step, progress)

        n_grow = size // 4 if grow is None else int(grow)
        if n_grow < 0 or grow_rounds < 0:
            raise InputError("grow and grow_rounds must be >= 0")
        grows_left = grow_rounds if n_grow > 0 else 0
        while True:
            if grows_left:
                grows_left -= 1
                info["passes"] += 1
                vocab = _grow(vocab, jobs, workers, n_grow, max_piece_length, ensure_unicode, progress)
                info["rounds"].append({"grown": len(vocab.pieces)})
            for _ in range(em_iterations):
                counts, loglik = estep(vocab, hard)
                if loglik == 0.0 and not counts.any():
                    raise TrainingError("the corpus is empty: nothing to refine the vocabulary on")
                keep = (vocab.lengths == 1) | (counts >= min_expected)
                counts = np.where(vocab.lengths == 1, np.maximum(counts, min_expected), counts)
                vocab = _reduced(vocab, keep, counts)
            info["rounds"].append({"pieces": len(vocab.pieces), "loglik": loglik})
            if len(vocab.pieces) <= target and not grows_left:
                break
            vocab = _prune(vocab, max(target, int(len(vocab.pieces) * shrink)))
        for _ in range(final_iterations):
            counts, loglik = estep(vocab, True)
            vocab = _Vocab(vocab.pieces, np.maximum(counts, 1.0))
        info["loglik"] = loglik
        info["bytes"] = jobs.total_bytes
    finally:
        if temporary:
            source.close()
    if stats is not None:
        stats.update(info)
    return {p: int(c) for p, c in zip(vocab.pieces, vocab.counts.tolist())}


def _reduced(vocab: _Vocab, keep: np.ndarray, counts: np.ndarray) -> _Vocab:
    if keep.all():
        return _Vocab(vocab.pieces, counts)
    idx = np.flatnonzero(keep)
    return _Vocab([vocab.pieces[i] for i in idx.tolist()], counts[idx])


def _prune(vocab: _Vocab, keep_n: int) -> _Vocab:
    """Keep the ``keep_n`` pieces whose removal costs the most likelihood (single bytes always)."""
    from ..kernels.unigram import removal_loss

    logp = vocab.trie.cell_values(vocab.log_probs(), -np.inf)
    loss = removal_loss(vocab.trie.base_check, vocab.trie.piece, logp, vocab.counts, vocab.arena, vocab.starts, vocab.lengths)
    # Largest loss first; ties by the piece order (length, bytes), so the result is deterministic.
    order = np.lexsort((np.arange(len(loss)), -loss))
    keep = np.zeros(len(loss), dtype=np.bool_)
    keep[order[:keep_n]] = True
    return _reduced(vocab, keep, vocab.counts)
