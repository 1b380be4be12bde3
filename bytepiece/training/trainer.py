"""``Trainer``: the BytePiece byte n-gram LM (BNLM) training algorithm, streaming and multi-core.

Implements DESIGN section 5 exactly (the original BytePiece 0.6.3 trainer's results, piece for
piece and count for count):

1. pass 1: count the maximal byte grams of every chunk position (numba packs each into a
   ``uint64``; numpy sorts; sorted runs are merged), then derive every n-gram of length
   1..order, prune them and turn counts into conditional log probabilities;
2. pass 2: segment every chunk with the BNLM Viterbi and count the pieces (numba hash table);
3. prune pieces: frequency/length, redundant pieces, then each target size.

Both passes are map-reduce over jobs of a few MB: with ``workers > 1`` the jobs run on threads
(every kernel releases the GIL) with one accumulator per thread, merged at the end, so results
do not depend on the number of workers.
"""

from __future__ import annotations

import os
import queue
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..atomic import OutputSet, check_writable
from ..errors import InputError, TrainingError
from ..model import FIRST_PIECE_ID, Model
from .corpus import DEFAULT_BATCH_BYTES, Corpus, Job, as_corpus, chunk_jobs
from .pruning import PieceSet, lexicographic_rank

VocabSize = Union[int, Sequence[int]]
MIN_VOCAB_SIZE = 256 + FIRST_PIECE_ID
PHASES = ("count n-grams", "prune n-grams", "count pieces", "prune pieces")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1 << 20) if sys.platform == "darwin" else ru / 1024


@lru_cache(maxsize=1)
def _return_freed_memory() -> bool:
    """Ask glibc to serve every large allocation by mmap (fixed 128 KB threshold): by default the
    threshold rises after the first big ``free`` and later arrays of a few MB come from the heap,
    where freed memory stays resident. Training allocates and frees many such arrays, so this
    lowers peak RSS by about 15%. No effect (and no error) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(-3, 128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


class _Progress:
    """One bar per phase on stderr (tqdm), only when enabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, desc: str, total: int | None, unit: str = "B") -> None:
        self.close()
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000,
                        file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.2)

    def update(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Trainer:
    """Train BytePiece models with the BNLM algorithm (DESIGN section 5).

    Parameters are those of the original: ``order`` (1..7), ``max_vocab_size`` (one size or a
    list, all trained in one run; each >= 259), ``max_piece_length``, ``min_count``,
    ``isolate_digits``, ``ensure_unicode``; plus ``workers`` (threads), ``progress`` (bars on
    stderr; default: when stderr is a terminal), ``batch_bytes`` (reading granularity),
    ``jsonl_field`` (read path corpora as JSON Lines) and ``errors`` (invalid UTF-8 in files:
    ``"replace"`` by U+FFFD, the default, or ``"strict"``).

    ``refine=True`` goes beyond the original (DESIGN section 5): each faithful model is grown
    with frequent adjacent piece pairs and pruned by unigram likelihood loss on the corpus
    (:func:`~bytepiece.training.refine.refine_vocabulary`), which compresses markedly better
    (English +50% bytes/token on the dev corpus) for a few more passes over the corpus. The
    default is the faithful algorithm, piece for piece the original's.

    ``train(corpus)`` returns one :class:`Model` per size, largest first, and keeps them in
    ``models``; ``save(path)`` writes them.
    """

    def __init__(
        self,
        order: int = 6,
        max_vocab_size: VocabSize = 10000,
        max_piece_length: int = 36,
        min_count: int = 2,
        isolate_digits: bool = False,
        ensure_unicode: bool = True,
        workers: int = 1,
        *,
        progress: bool | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        jsonl_field: str | None = None,
        errors: str = "replace",
        refine: bool = False,
    ) -> None:
        def whole(name: str, value: Any, low: int, high: int | None = None) -> int:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
                rng = f"between {low} and {high}" if high is not None else f">= {low}"
                raise InputError(f"{name} must be an integer {rng}, got {value!r}")
            return int(value)

        self.order = whole("order", order, 1, 7)
        if isinstance(max_vocab_size, (str, bytes)):
            raise InputError(f"max_vocab_size must be an integer or a list of integers, got {max_vocab_size!r}")
        try:
            sizes = [max_vocab_size] if isinstance(max_vocab_size, (int, np.integer)) else list(max_vocab_size)
        except TypeError:
            raise InputError(f"max_vocab_size must be an integer or a list of integers, got {max_vocab_size!r}") from None
        if not sizes:
            raise InputError("max_vocab_size must be a size or a non-empty list of sizes")
        for s in sizes:
            whole("max_vocab_size", s, MIN_VOCAB_SIZE)
        self.max_vocab_size: list[int] = sorted({int(s) for s in sizes}, reverse=True)
        self.max_piece_length = whole("max_piece_length", max_piece_length, 1)
        self.min_count = whole("min_count", min_count, 1)
        self.isolate_digits = bool(isolate_digits)
        self.ensure_unicode = bool(ensure_unicode)
        self.workers = whole("workers", workers, 1)
        self.progress = progress
        self.batch_bytes = whole("batch_bytes", batch_bytes, 1024)
        self.jsonl_field = jsonl_field
        if errors not in ("replace", "strict"):
            raise InputError(f"errors must be 'replace' or 'strict', got {errors!r}")
        self.errors = errors
        self.refine = bool(refine)
        self.models: list[Model] = []
        self.timings: dict[str, float] = {}
        self.stats: dict[str, Any] = {}
        self.notices: list[str] = []

    # -- public API ---------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "max_vocab_size": list(self.max_vocab_size),
            "max_piece_length": self.max_piece_length,
            "min_count": self.min_count,
            "isolate_digits": self.isolate_digits,
            "ensure_unicode": self.ensure_unicode,
            "refine": self.refine,
        }

    def train(self, corpus: Any) -> list[Model]:
        """Train on ``corpus``: a file path (``str`` or ``os.PathLike``), a list of
        ``pathlib.Path``, a :class:`~bytepiece.training.corpus.Corpus`, or any iterable of
        texts (``str``); returns the models, largest vocabulary first."""
        source, temporary = as_corpus(corpus, jsonl_field=self.jsonl_field, errors=self.errors)
        _return_freed_memory()
        self.notices = []
        self.timings = {}
        progress = _Progress(self._progress_enabled())
        t_all = time.perf_counter()
        try:
            t0 = time.perf_counter()
            grams = list(self._count_ngrams(source, progress))
            self.timings["count n-grams"] = time.perf_counter() - t0
            stats = source.stats
            self.stats = {"texts": stats.texts, "bytes": stats.bytes, "invalid_utf8": stats.invalid_utf8,
                          "corpus": source.describe()}
            if stats.invalid_utf8:
                self._notice(f"the corpus has {stats.invalid_utf8} invalid UTF-8 sequence(s); "
                             "each was replaced by U+FFFD (use errors='strict' to stop instead)")
            total_positions = int(grams[1].sum())
            if total_positions == 0:
                raise TrainingError(f"the corpus is empty ({source.describe()}: {stats.texts} texts, 0 bytes of text); "
                                    "nothing to learn a vocabulary from")
            t0 = time.perf_counter()
            progress.start("prune n-grams", None, unit="step")
            table, bits, n_grams = self._ngram_scores(grams, total_positions)
            progress.close()
            self.timings["prune n-grams"] = time.perf_counter() - t0
            self.stats["ngrams_kept"] = n_grams
            t0 = time.perf_counter()
            pieces = self._count_pieces(source, progress, table, bits)
            del table
            self.timings["count pieces"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            results = self._prune_pieces(*pieces, progress=progress)
            self.timings["prune pieces"] = time.perf_counter() - t0
            if self.refine:
                t0 = time.perf_counter()
                results = [self._refine(source, counts_map, size, progress)
                           for size, counts_map in zip(self.max_vocab_size, results)]
                self.timings["refine"] = time.perf_counter() - t0
        finally:
            progress.close()
            if temporary:
                source.close()
        self.timings["total"] = time.perf_counter() - t_all
        self.stats["peak_rss_mb"] = round(peak_rss_mb(), 1)
        self.models = []
        for size, counts_map in zip(self.max_vocab_size, results):
            metadata = self._metadata(size, len(counts_map))
            self.models.append(Model.from_counts(counts_map, metadata))
            if len(counts_map) + FIRST_PIECE_ID < size and len(counts_map) + FIRST_PIECE_ID < 0.9 * size:
                self._notice(f"vocabulary size {size} was asked for, but the corpus only supports "
                             f"{len(counts_map) + FIRST_PIECE_ID} ({len(counts_map)} pieces); the model is smaller")
        return self.models

    def output_paths(self, path: str | os.PathLike) -> list[Path]:
        """Where :meth:`save` writes: ``path`` itself for one size; for several sizes the size is
        inserted before the extension (``out.model`` -> ``out.32000.model``) or, without an
        extension, appended (``out`` -> ``out.32000``)."""
        path = Path(path)
        if len(self.max_vocab_size) == 1:
            return [path]
        if path.suffix:
            return [path.with_name(f"{path.stem}.{size}{path.suffix}") for size in self.max_vocab_size]
        return [path.with_name(f"{path.name}.{size}") for size in self.max_vocab_size]

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write the trained models (original JSON format; options and timings in the
        ``.meta.json`` sidecar) atomically; refuses to replace existing files unless
        ``overwrite``. Returns the paths written."""
        if not self.models:
            raise TrainingError("nothing to save: call train() first")
        paths = self.output_paths(path)
        check_writable(paths, overwrite=overwrite)
        # One set: every model and sidecar appears, or (error, kill) the previous files stay.
        with OutputSet(overwrite=overwrite) as out:
            for model, p in zip(self.models, paths):
                model.stage(out, p)
        return paths

    # -- helpers ------------------------------------------------------------------------------
    def _progress_enabled(self) -> bool:
        if self.progress is not None:
            return bool(self.progress)
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        warnings.warn(message, stacklevel=3)

    def _metadata(self, size: int, n_pieces: int) -> dict[str, Any]:
        from .. import __version__

        return {
            "trainer": "bytepiece BNLM + unigram refinement" if self.refine else "bytepiece BNLM",
            "bytepiece_version": __version__,
            "normalization": "nfc",
            "training_options": {**self.options(), "workers": self.workers},
            "target_vocab_size": size,
            "vocab_size": n_pieces + FIRST_PIECE_ID,
            "corpus": {k: v for k, v in self.stats.items() if k in ("texts", "bytes", "invalid_utf8", "corpus", "ngrams_kept", "pieces_counted", "distinct_pieces")},
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "peak_rss_mb": self.stats.get("peak_rss_mb"),
        }

    def _refine(self, source: Corpus, counts_map: dict[bytes, int], size: int, progress: _Progress) -> dict[bytes, int]:
        from .refine import refine_vocabulary

        stats: dict[str, Any] = {}
        progress.start(f"refine {size}", None)
        try:
            return refine_vocabulary(source, counts_map, size, workers=self.workers,
                                     max_piece_length=self.max_piece_length, ensure_unicode=self.ensure_unicode,
                                     isolate_digits=self.isolate_digits, batch_bytes=self.batch_bytes,
                                     progress=progress.update, stats=stats)
        finally:
            progress.close()
            self.stats.setdefault("refine", {})[size] = {k: v for k, v in stats.items() if k != "rounds"}

    def _jobs(self, source: Corpus, progress: _Progress) -> Iterable[Job]:
        consumed = 0

        def advance(batch) -> None:
            nonlocal consumed
            if batch.consumed:
                progress.update(batch.consumed - consumed)
                consumed = batch.consumed

        return chunk_jobs(source, self.batch_bytes, self.isolate_digits, advance)

    def _map(self, source: Corpus, progress: _Progress, make_state: Callable[[], Any],
             work: Callable[[Any, np.ndarray, np.ndarray, int, int], Any]) -> list[Any]:
        """Run ``state = work(state, buf, bounds, lo, hi)`` over all jobs; one state per worker."""
        if self.workers == 1:
            state = make_state()
            for job in self._jobs(source, progress):
                state = work(state, *job)
            return [state]
        jobs: queue.Queue = queue.Queue(maxsize=2 * self.workers)
        states: list[Any] = [None] * self.workers
        errors: list[BaseException] = []

        def run(i: int) -> None:
            state = make_state()
            try:
                while True:
                    job = jobs.get()
                    if job is None:
                        break
                    if not errors:
                        state = work(state, *job)
            except BaseException as e:  # pragma: no cover - surfaced below
                errors.append(e)
                while jobs.get() is not None:
                    pass
            states[i] = state

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for job in self._jobs(source, progress):
                if errors:
                    break
                jobs.put(job)
        finally:
            for _ in threads:
                jobs.put(None)
            for t in threads:
                t.join()
        if errors:
            raise errors[0]
        return states

    # -- pass 1 -------------------------------------------------------------------------------
    def _count_ngrams(self, source: Corpus, progress: _Progress) -> tuple[np.ndarray, np.ndarray]:
        from ..kernels.ngrams import gram_keys, merge_counts, run_lengths

        order = self.order

        def work(runs: list, buf, bounds, lo, hi):
            keys = gram_keys(buf, bounds, lo, hi, order)
            keys.sort()
            runs.append(run_lengths(keys))
            del keys
            while len(runs) >= 2 and 2 * len(runs[-1][0]) >= len(runs[-2][0]):
                k2, c2 = runs.pop()
                k1, c1 = runs.pop()
                runs.append(merge_counts(k1, c1, k2, c2))
            return runs

        progress.start("count n-grams", source.total_bytes)
        all_runs = [r for runs in self._map(source, progress, list, work) for r in runs]
        progress.close()
        if not all_runs:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        all_runs.sort(key=lambda r: len(r[0]))
        while len(all_runs) > 1:
            k1, c1 = all_runs.pop(0)
            k2, c2 = all_runs.pop(0)
            all_runs.append(merge_counts(k1, c1, k2, c2))
            all_runs.sort(key=lambda r: len(r[0]))
        return all_runs[0]

    def _ngram_scores(self, grams: list, total_positions: int):
        """Score table of the kept n-grams: conditional log probabilities (DESIGN 5.1-5.2).
        ``grams`` is ``[keys, counts]`` of the maximal grams; it is emptied to free them early."""
        from ..kernels.ngrams import build_score_table, derive_ngrams, parent_counts

        keys, counts = grams
        grams.clear()
        gkeys, gcounts = derive_ngrams(keys, counts, self.order, self.min_count)
        del keys, counts
        # Every single byte is a 1-gram: add the missing ones with count 1 (and 1 position each).
        one = (gkeys & np.uint64(0xFF)) == np.uint64(1)
        present = np.zeros(256, dtype=np.bool_)
        present[(gkeys[one] >> np.uint64(56)).astype(np.int64)] = True
        missing = np.flatnonzero(~present).astype(np.uint64)
        if len(missing):
            gkeys = np.concatenate([gkeys, (missing << np.uint64(56)) | np.uint64(1)])
            gcounts = np.concatenate([gcounts, np.ones(len(missing), np.int64)])
            total_positions += len(missing)
            one = (gkeys & np.uint64(0xFF)) == np.uint64(1)
        bits = 4
        while (1 << bits) < 2 * len(gkeys) + 16:
            bits += 1
        parents = parent_counts(gkeys, gcounts, total_positions)
        cond = np.log(gcounts)
        cond[one] -= np.log(total_positions)
        several = ~one
        cond[several] -= np.log(parents[several])
        del parents, gcounts
        table = build_score_table(gkeys, cond, bits)
        self.stats["positions"] = total_positions
        return table, bits, len(gkeys)

    # -- pass 2 -------------------------------------------------------------------------------
    def _count_pieces(self, source: Corpus, progress: _Progress, table, bits):
        from ..kernels.bnlm import count_pieces, merge_tables

        vals = table.view(np.float64)
        order, ensure_unicode = self.order, self.ensure_unicode

        def make_state():
            cap = 1 << 16
            return [np.full(cap, -1, np.int32), np.empty(cap // 2, np.uint64), np.empty(cap // 2, np.int64),
                    np.empty(cap // 2, np.int32), np.empty(cap // 2, np.int64), np.empty(1 << 20, np.uint8),
                    np.zeros(3, np.int64)]

        def work(state, buf, bounds, lo, hi):
            meta = state[6]
            arrays = count_pieces(buf, bounds, lo, hi, order, ensure_unicode, table, vals, bits, *state[:6], meta)
            return [*arrays, meta]

        progress.start("count pieces", source.total_bytes or self.stats.get("bytes"))
        states = self._map(source, progress, make_state, work)
        progress.close()
        state = states[0]
        for other in states[1:]:
            n = int(other[6][0])
            arrays = merge_tables(*state[:6], state[6], other[1], other[2], other[3], other[4], other[5], n)
            state[6][2] += other[6][2]
            state = [*arrays, state[6]]
        slots, hashes, starts, lengths, counts, arena, meta = state
        n, used = int(meta[0]), int(meta[1])
        self.stats["pieces_counted"] = int(meta[2])
        self.stats["distinct_pieces"] = n
        return arena[:used].copy(), starts[:n].copy(), lengths[:n].astype(np.int64), counts[:n].copy()

    # -- pruning ------------------------------------------------------------------------------
    def _prune_pieces(self, arena, starts, lengths, counts, *, progress: _Progress) -> list[dict[bytes, int]]:
        # Every single byte is a piece: add the missing ones with count 1.
        singles = lengths == 1
        present = np.zeros(256, dtype=np.bool_)
        present[arena[starts[singles]]] = True
        missing = np.flatnonzero(~present).astype(np.uint8)
        if len(missing):
            base = len(arena)
            arena = np.concatenate([arena, missing])
            starts = np.concatenate([starts, base + np.arange(len(missing), dtype=np.int64)])
            lengths = np.concatenate([lengths, np.ones(len(missing), np.int64)])
            counts = np.concatenate([counts, np.ones(len(missing), np.int64)])
        progress.start("prune pieces", None, unit="piece")
        pieces = PieceSet(arena, starts, lengths, counts, max_piece_length=self.max_piece_length,
                          min_count=self.min_count, workers=self.workers, on_progress=progress.update)
        try:
            pieces.prune_redundant()
            cand_bytes = [arena[s:s + n].tobytes() for s, n in zip(starts[pieces.cand].tolist(), lengths[pieces.cand].tolist())]
            rank = lexicographic_rank(cand_bytes)
            results: list[dict[bytes, int]] = []
            for size in self.max_vocab_size:
                if pieces.size > size - FIRST_PIECE_ID:
                    pieces.shrink_to(size - FIRST_PIECE_ID, rank)
                    pieces.prune_redundant()
                idx = np.flatnonzero(pieces.present)
                results.append({cand_bytes[i]: int(c) for i, c in zip(idx.tolist(), pieces.counts[idx].tolist())})
        finally:
            pieces.close()
            progress.close()
        return results
