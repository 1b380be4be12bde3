"""``Trainer``: the BytePiece byte n-gram LM (BNLM) training algorithm, at corpus scale.

Implements DESIGN section 5 exactly (the original BytePiece 0.6.3 trainer's results, piece for
piece and count for count):

1. pass 1: count the maximal byte grams of every chunk position and derive the kept n-grams and
   their conditional log probabilities (:mod:`.build`);
2. pass 2: segment every chunk with the BNLM Viterbi and count the pieces;
3. prune pieces: frequency/length, redundant pieces, then each target size (:mod:`.pruning`).

Every corpus pass is a map over shards of the input on the engine (local threads by default, or
a Dask cluster with ``cluster=``), reduced in corpus order under a memory budget (``max_memory``,
spilling sorted runs to ``tmp_dir`` when needed), so the model is the same for any plan.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..io.atomic import OutputSet, check_writable, is_stream
from ..corpus import DEFAULT_BATCH_BYTES, open_corpus, plan_shards
from ..corpus.sources import check_text_document
from ..engine import RssMonitor, default_budget, make_engine
from ..engine.make import check_workers_apply
from ..units import parse_size
from ..engine.memory import return_freed_memory
from ..engine.interrupts import call_interruptibly
from .spill import SpillDir, check_tmp_dir
from ..errors import InputError, TrainingError
from ..model import FIRST_PIECE_ID, Model, metadata_path
from ..progress import Progress
from .build import count_ngrams, count_pieces, ngram_model, with_all_bytes
from .memory_plan import MemoryPlan
from .passes import PassOptions
from .pruning import PieceSet
from .report import PhaseReport, TrainingReport

VocabSize = Union[int, Sequence[int]]
MIN_VOCAB_SIZE = 256 + FIRST_PIECE_ID
MB = 1 << 20


#: the largest value of any integer option, and why
_INT64 = ((1 << 63) - 1, "counts and lengths are 64-bit integers")
#: the largest vocabulary, and why
_VOCAB_LIMIT = (1 << 32, "ids are at most 32-bit in token files")


def _whole(name: str, value: Any, low: int, high: int | None = None, *,
           limit: tuple[int, str] | None = _INT64) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        rng = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InputError(f"{name} must be an integer {rng}, got {value!r}")
    if limit is not None and value > limit[0]:
        raise InputError(f"{name} must be at most {limit[0]} ({limit[1]}), got {value!r}")
    return int(value)


class Trainer:
    """Train BytePiece models with the BNLM algorithm (DESIGN section 5).

    Parameters are those of the original: ``order`` (1..7), ``max_vocab_size`` (one size or a
    list, all trained in one run; each >= 259), ``max_piece_length``, ``min_count``,
    ``isolate_digits``, ``ensure_unicode``; plus where and how to run:

    - ``workers``: threads of the local engine (default: the CPUs available);
    - ``cluster``: ``None`` (local threads), ``"local:N"`` (a Dask LocalCluster of N worker
      processes for this run), a scheduler address (``"tcp://host:8786"``) or a
      ``distributed.Client``; the model does not depend on it;
    - ``max_memory``: the memory budget (``"1G"``, bytes; default half of the available memory);
      counts beyond it are spilled to ``tmp_dir`` (default: the system temporary directory);
    - ``text_document``: what a document of a plain-text file is, each ``"line"`` (without its
      newline; the default, as encoding reads it) or the whole ``"file"``;
    - ``progress`` (bars on stderr; default: when stderr is a terminal), ``jsonl_field`` /
      ``parquet_column`` (where the text is in JSON Lines / Parquet inputs; default ``"text"``),
      ``errors`` (invalid UTF-8: ``"replace"`` by U+FFFD and count, or ``"strict"``).

    ``refine=True`` goes beyond the original: each faithful model is grown with frequent adjacent
    piece pairs and pruned by unigram likelihood loss on the corpus (:mod:`.refine`), which
    compresses markedly better for a few more passes over the corpus.

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
        workers: int | None = None,
        *,
        cluster: Any = None,
        max_memory: str | int | None = None,
        tmp_dir: str | os.PathLike | None = None,
        progress: bool | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        shard_bytes: int | None = None,
        jsonl_field: str | None = None,
        parquet_column: str | None = None,
        errors: str = "replace",
        refine: bool = False,
        text_document: str = "line",
    ) -> None:
        self.order = _whole("order", order, 1, 7)
        if isinstance(max_vocab_size, (str, bytes)):
            raise InputError(f"max_vocab_size must be an integer or a list of integers, got {max_vocab_size!r}")
        try:
            sizes = [max_vocab_size] if isinstance(max_vocab_size, (int, np.integer)) else list(max_vocab_size)
        except TypeError:
            raise InputError(f"max_vocab_size must be an integer or a list of integers, got {max_vocab_size!r}") from None
        if not sizes:
            raise InputError("max_vocab_size must be a size or a non-empty list of sizes")
        for s in sizes:
            _whole("max_vocab_size", s, MIN_VOCAB_SIZE, limit=_VOCAB_LIMIT)
        self.max_vocab_size: list[int] = sorted({int(s) for s in sizes}, reverse=True)
        self.max_piece_length = _whole("max_piece_length", max_piece_length, 1)
        self.min_count = _whole("min_count", min_count, 1)
        self.isolate_digits = bool(isolate_digits)
        self.ensure_unicode = bool(ensure_unicode)
        self.workers = None if workers is None else _whole("workers", workers, 1, limit=None)  # the engine caps it
        self.cluster = cluster
        check_workers_apply(cluster, self.workers)
        self.max_memory = None if max_memory is None else parse_size(max_memory, name="max_memory")
        self.tmp_dir = tmp_dir
        self.progress = progress
        self.batch_bytes = _whole("batch_bytes", batch_bytes, 1024)
        self.shard_bytes = None if shard_bytes is None else _whole("shard_bytes", shard_bytes, 1 << 12)
        self.jsonl_field = jsonl_field
        self.text_document = check_text_document(text_document)
        self.parquet_column = parquet_column
        if errors not in ("replace", "strict"):
            raise InputError(f"errors must be 'replace' or 'strict', got {errors!r}")
        self.errors = errors
        self.refine = bool(refine)
        self.models: list[Model] = []
        self.report = TrainingReport()

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
            "text_document": self.text_document,
        }

    def train(self, corpus: Any) -> list[Model]:
        """Train on ``corpus``: a file path (``str`` or ``os.PathLike``; text, JSON Lines or
        Parquet, gzip/zstd allowed), a list of ``pathlib.Path``, :class:`~bytepiece.corpus.Files`,
        or any iterable of texts (``str``); returns the models, largest vocabulary first."""
        progress = Progress(self.progress)
        return_freed_memory()
        self.report = report = TrainingReport()
        budget = self.max_memory or default_budget()
        check_tmp_dir(self.tmp_dir)
        inputs = open_corpus(corpus, jsonl_field=self.jsonl_field, parquet_column=self.parquet_column,
                             text_document=self.text_document,
                             errors=self.errors, tmp_dir=self.tmp_dir)
        monitor = RssMonitor()
        try:
            with inputs, SpillDir(self.tmp_dir) as spill, make_engine(self.cluster, workers=self.workers) as engine:
                plan = MemoryPlan.make(budget, engine.workers, self.shard_bytes, sum(src.size for src in inputs.sources))
                plan.check_floor()
                shards = plan_shards(inputs.sources, plan.shard_bytes)
                t0 = time.perf_counter()
                with progress.status("loading kernels (compiled on the first run)"):
                    from .warmup import LARGE_CORPUS_BYTES, warm_up

                    warm_up(engine, tuple(sorted({src.format for src in inputs.sources})),
                            large=sum(src.size for src in inputs.sources) > LARGE_CORPUS_BYTES)
                report.compile_s = time.perf_counter() - t0
                monitor.phase_peak()
                results = call_interruptibly(self._run, engine, shards, plan, spill, progress, monitor, inputs)
                report.plan = {**engine.describe(), **plan.describe(), "shards": len(shards)}
                report.spilled_bytes = spill.bytes_written
        finally:
            monitor.close()
        self.models = []
        for size, counts_map in zip(self.max_vocab_size, results):
            self.models.append(Model.from_counts(counts_map, self._metadata(size, len(counts_map))))
            got = len(counts_map) + FIRST_PIECE_ID
            if got < 0.9 * size:
                self._notice(f"vocabulary size {size} was asked for, but the corpus only supports "
                             f"{got} ({len(counts_map)} pieces); the model is smaller. A small corpus does this, and "
                             "so does one that repeats its text: text that occurs k times counts as if min_count "
                             "(CLI: --min-count) were divided by k, which keeps long rare pieces that pruning then "
                             "cuts up; deduplicate the corpus or raise min_count")
            elif got < size:
                self._notice(f"the model has {got:,} ids, {size - got:,} fewer than the {size:,} asked for: after the "
                             f"cut to size, {size - got:,} piece(s) were used by no segmentation (other pieces spell "
                             "them more probably) and were removed")
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

    def check_output(self, path: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
        """Raise now if :meth:`save` could not write ``path`` (a missing or read-only directory,
        an existing model without ``overwrite``): call it before a long run. Returns the model
        paths."""
        paths = self.output_paths(path)
        check_writable(paths, overwrite=overwrite)
        check_writable([metadata_path(p) for p in paths if not is_stream(p)], overwrite=True)
        return paths

    def save(self, path: str | os.PathLike, overwrite: bool = False, *, special_tokens: Iterable[str] = ()) -> list[Path]:
        """Write the trained models (original JSON format; options and timings in the
        ``.meta.json`` sidecar) atomically; refuses to replace existing files unless
        ``overwrite``. ``special_tokens`` are reserved in every model (ids after the pieces).
        Returns the paths written."""
        if not self.models:
            raise TrainingError("nothing to save: call train() first")
        paths = self.check_output(path, overwrite=overwrite)
        # One set: every model and sidecar appears, or (error, kill) the previous files stay.
        with OutputSet(overwrite=overwrite) as out:
            for model, p in zip(self.models, paths):
                model.with_special_tokens(special_tokens).stage(out, p)
        return paths

    # -- the run --------------------------------------------------------------------------------
    def _run(self, engine, shards, plan: MemoryPlan, spill: SpillDir, progress: Progress, monitor: RssMonitor,
             inputs) -> list[dict[bytes, int]]:
        options = PassOptions(self.order, self.min_count, self.isolate_digits, self.ensure_unicode, self.errors,
                              self.batch_bytes)
        report = self.report

        def done(name: str, t0: float, pass_report=None) -> None:
            phase = PhaseReport(round(time.perf_counter() - t0, 3), round(monitor.phase_peak() / MB, 1))
            if pass_report is not None:
                phase.spilled_bytes, phase.partitions = pass_report.spilled_bytes, pass_report.partitions
                phase.worker_peak_rss_mb = {k: round(v / MB, 1) for k, v in pass_report.worker_peaks.items()}
            report.phases[name] = phase

        t0 = time.perf_counter()
        counts, read, pass_report = count_ngrams(engine, shards, options, plan, spill, progress)
        done("count n-grams", t0, pass_report)
        report.texts, report.bytes, report.corpus = read.texts, read.bytes, inputs.description
        report.invalid_utf8 = read.invalid_utf8 + inputs.spooled_invalid_utf8
        if report.invalid_utf8:
            self._notice(f"the corpus has {report.invalid_utf8} invalid UTF-8 sequence(s); "
                         "each was replaced by U+FFFD (to stop at the first: errors='strict' (CLI: --strict-utf8))")
        if read.bytes == 0:
            what = inputs.description if inputs.from_python else f"{inputs.description}: {read.texts} texts"
            raise TrainingError(f"the corpus is empty ({what}, 0 bytes of text); nothing to learn a vocabulary from")
        t0 = time.perf_counter()
        model, pass_report = ngram_model(counts, options, plan, progress)
        del counts
        report.ngrams_kept, report.ngram_table_bytes = model.kept, model.nbytes
        report.positions = pass_report.extra.get("positions")
        done("prune n-grams", t0, pass_report)
        t0 = time.perf_counter()
        pieces, pass_report = count_pieces(engine, shards, model, options, plan, spill, progress,
                                           max_piece_length=self.max_piece_length)
        del model
        report.pieces_counted, report.distinct_pieces = pieces.seen, pieces.distinct
        done("count pieces", t0, pass_report)
        t0 = time.perf_counter()
        results = self._prune(engine, pieces, plan, progress)
        done("prune pieces", t0)
        if self.refine:
            from .refine import refine_on_engine

            t0 = time.perf_counter()
            refined = []
            for size, counts_map in zip(self.max_vocab_size, results):
                stats: dict[str, Any] = {}
                refined.append(refine_on_engine(engine, shards, counts_map, size, options=options, plan=plan, spill=spill,
                                                max_piece_length=self.max_piece_length, progress=progress, stats=stats))
                report.refine[size] = {k: v for k, v in stats.items() if k != "rounds"}
            results = refined
            done("refine", t0)
        return results

    def _prune(self, engine, pieces, plan: MemoryPlan, progress: Progress) -> list[dict[bytes, int]]:
        from .pruning import TASK_BYTES

        pieces.dropped.spill_to(plan.prune_dropped_limit(int(pieces.candidates.offsets[-1]), pieces.candidates.size))
        piece_set = PieceSet(with_all_bytes(pieces.take_candidates()), engine=engine, progress=progress,
                             dropped_bytes=pieces.dropped.piece_bytes)
        piece_set.absorb(pieces.dropped.batches(TASK_BYTES), pieces.dropped.count)
        piece_set.prune_redundant()
        rank = piece_set.lexicographic_rank()
        results: list[dict[bytes, int]] = []
        for size in self.max_vocab_size:
            if piece_set.size > size - FIRST_PIECE_ID:
                piece_set.shrink_to(size - FIRST_PIECE_ID, rank)
                piece_set.prune_redundant()
            results.append(piece_set.result())
        return results

    # -- helpers ------------------------------------------------------------------------------
    def _notice(self, message: str) -> None:
        self.report.notices.append(message)
        warnings.warn(message, stacklevel=3)

    def _metadata(self, size: int, n_pieces: int) -> dict[str, Any]:
        from .. import __version__

        run = self.report.as_dict()
        corpus = {k: run[k] for k in ("texts", "bytes", "invalid_utf8", "corpus", "ngrams_kept", "pieces_counted",
                                      "distinct_pieces")}
        return {
            "trainer": "bytepiece BNLM + unigram refinement" if self.refine else "bytepiece BNLM",
            "bytepiece_version": __version__,
            "normalization": "nfc",
            "training_options": self.options(),
            "target_vocab_size": size,
            "vocab_size": n_pieces + FIRST_PIECE_ID,
            "corpus": corpus,
            "timings_s": {"compile": round(self.report.compile_s, 3), "total": run["total_s"],
                          **{name: phase["wall_s"] for name, phase in run["phases"].items()}},
            "phases": run["phases"],
            "plan": run["plan"],
            "spilled_bytes": run["spilled_bytes"],
            "peak_rss_mb": run["peak_rss_mb"],
        }
