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

Every pass is a map over the corpus shards on the engine (the same tasks as training: local
threads or a Dask cluster), each task returning count vectors or sorted runs of pair keys that
are combined in corpus order, so the result does not depend on the plan. Pair counts are reduced
under the memory budget like the trainer's counts (spilled and read back partition by partition
when they outgrow it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..corpus import DEFAULT_BATCH_BYTES, Shard, open_corpus, plan_shards, read_shard
from ..engine import Engine, default_budget, make_engine
from ..units import parse_size
from .spill import KeyRun, RunStore, SpillDir
from ..errors import InputError, TrainingError
from ..model import FIRST_PIECE_ID
from ..normalize import training_jobs
from ..progress import Progress
from .memory_plan import MemoryPlan
from .passes import PassOptions, map_shards


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


class Lattice(NamedTuple):
    """What a refinement task needs of the vocabulary: its forward trie and per-cell values."""

    base_check: npt.NDArray[np.int32]
    piece: npt.NDArray[np.int32]
    values: npt.NDArray[np.float64]
    n: int


def expectation_task(shard: Shard, lattice: Lattice, hard: bool, options: PassOptions) -> tuple[np.ndarray, float, int]:
    """Counts of every piece in the shard (Viterbi counts, or expected counts), the log
    likelihood and the bytes read."""
    from ..kernels.unigram import expected_counts, viterbi_counts

    kernel = viterbi_counts if hard else expected_counts
    counts = np.zeros(lattice.n, dtype=np.float64)
    loglik = 0.0
    n_bytes = 0
    for batch in read_shard(shard, purpose="train", errors=options.errors, batch_bytes=options.batch_bytes):
        n_bytes += len(batch.data)
        for buf, bounds, lo, hi in training_jobs(batch, isolate_digits=options.isolate_digits, job_bytes=options.job_bytes):
            loglik += kernel(lattice.base_check, lattice.piece, lattice.values, buf, bounds, lo, hi, counts)
    return counts, loglik, n_bytes


def pairs_task(shard: Shard, lattice: Lattice, options: PassOptions) -> tuple[KeyRun, int]:
    """Sorted, counted keys ``left * n + right`` of adjacent pieces in the shard's best segmentations."""
    from ..kernels.runs import run_lengths
    from ..kernels.unigram import viterbi_pairs
    from .passes import merge_run_into_stack

    stack: list[KeyRun] = []
    n_bytes = 0
    for batch in read_shard(shard, purpose="train", errors=options.errors, batch_bytes=options.batch_bytes):
        n_bytes += len(batch.data)
        for buf, bounds, lo, hi in training_jobs(batch, isolate_digits=options.isolate_digits, job_bytes=options.job_bytes):
            keys = viterbi_pairs(lattice.base_check, lattice.piece, lattice.values, buf, bounds, lo, hi, lattice.n)
            keys = keys.view(np.uint64)
            keys.sort()
            merge_run_into_stack(stack, KeyRun(*run_lengths(keys)))
    run = KeyRun.empty()
    while stack:
        run = stack.pop().merge(run) if run.size else stack.pop()
    return run, n_bytes


class _Passes:
    """The corpus passes of one refinement, on an engine."""

    def __init__(self, engine: Engine, shards: list[Shard], options: PassOptions, plan: MemoryPlan, spill: SpillDir,
                 progress: Callable[[int], None] | Progress | None, label: str) -> None:
        self.engine, self.shards, self.options, self.plan, self.spill = engine, shards, options, plan, spill
        self.progress = progress
        self.label = label
        self.passes = 0
        self.total_bytes = 0

    @contextlib.contextmanager
    def _bar(self, what: str) -> Iterator[Callable[[int], None]]:
        """Per pass, a bar in input bytes with its total and ETA (or the caller's callback)."""
        self.passes += 1
        if isinstance(self.progress, Progress):
            with self.progress.phase(f"{self.label} {self.passes} {what}", sum(s.size for s in self.shards),
                                     transient=True) as advance:
                yield advance
        elif self.progress is not None:
            yield self.progress
        else:
            yield lambda n: None

    def expectation(self, vocab: _Vocab, hard: bool) -> tuple[np.ndarray, float]:
        logp = vocab.log_probs()
        values = vocab.trie.cell_values(logp, -np.inf) if hard else vocab.trie.cell_values(np.exp(logp), 0.0)
        lattice = self.engine.share(Lattice(vocab.trie.base_check, vocab.trie.piece, values, len(vocab.pieces)))
        total = np.zeros(len(vocab.pieces), dtype=np.float64)
        loglik = 0.0
        n_bytes = 0
        with self._bar("count") as advance:
            for _, (counts, ll, size) in map_shards(self.engine, expectation_task, self.shards, lattice, hard,
                                                    self.options, advance=advance, window=self.plan.window):
                total += counts
                loglik += ll
                n_bytes += size
        self.total_bytes = n_bytes
        return total, loglik

    def pairs(self, vocab: _Vocab) -> RunStore:
        values = vocab.trie.cell_values(vocab.log_probs(), -np.inf)
        lattice = self.engine.share(Lattice(vocab.trie.base_check, vocab.trie.piece, values, len(vocab.pieces)))
        store = RunStore(self.plan.pass1_reducer_limit(), self.spill)
        total = 0
        with self._bar("grow") as advance:
            for _, (run, n_bytes) in map_shards(self.engine, pairs_task, self.shards, lattice, self.options,
                                                advance=advance, window=self.plan.window):
                store.add(run)
                total += n_bytes
        self.total_bytes = total
        return store


def _grow(vocab: _Vocab, passes: _Passes, n_new: int, max_piece_length: int, ensure_unicode: bool) -> _Vocab:
    """Add the ``n_new`` most frequent pairs of adjacent pieces in the best segmentations of the
    corpus (at most ``max_piece_length`` bytes, seen at least twice, not already pieces; with
    ``ensure_unicode`` not starting with a UTF-8 continuation byte), with their pair counts as
    starting counts. Pairs are ranked by count (then key) over all partitions of the pair counts:
    each partition contributes its best ``limit`` pairs, and if the selection reaches past what a
    partition contributed, it is made again with a larger limit, so it is exact for any plan."""
    store = passes.pairs(vocab)
    n = len(vocab.pieces)
    limit = 2 * (n_new + n) + 16
    while True:
        keys_parts, counts_parts, floors = [], [], []
        for lo, hi in store.partitions(passes.plan.partition_bytes(store.limit)):
            run = store.load(lo, hi, KeyRun)
            keys, counts = run.keys.view(np.int64), run.counts
            left, right = keys // n, keys % n
            fits = (counts >= 2) & (vocab.lengths[left] + vocab.lengths[right] <= max_piece_length)
            if ensure_unicode:  # no piece of several bytes may start with a UTF-8 continuation byte
                first = vocab.arena[vocab.starts[left]]
                fits &= (first < 0x80) | (first >= 0xC0)
            keys, counts = keys[fits], counts[fits]
            order = np.lexsort((keys, -counts))
            if len(order) > limit:
                cut = order[limit - 1]
                floors.append((int(counts[cut]), int(keys[cut])))  # the last pair this partition gave
                order = order[:limit]
            keys_parts.append(keys[order])
            counts_parts.append(counts[order])
        keys = np.concatenate(keys_parts) if keys_parts else np.zeros(0, np.int64)
        counts = np.concatenate(counts_parts) if counts_parts else np.zeros(0, np.int64)
        order = np.lexsort((keys, -counts))  # most frequent first; ties by key (deterministic)
        present = set(vocab.pieces)
        new: dict[bytes, float] = {}
        last = None
        for i in order.tolist():
            if len(new) >= n_new:
                break
            last = (int(counts[i]), int(keys[i]))
            p = vocab.pieces[int(keys[i] // n)] + vocab.pieces[int(keys[i] % n)]
            if p in present:
                continue
            new[p] = new.get(p, 0.0) + float(counts[i])
        # Exact only if every truncated partition's last contribution ranks after the last pair
        # used (or the selection stopped early because no pair was left at all).
        exhausted = len(new) < n_new
        if not any(exhausted or last is None or (-f[0], f[1]) < (-last[0], last[1]) for f in floors):
            break
        limit *= 4
    store.close()
    merged = dict(zip(vocab.pieces, vocab.counts.tolist()))
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


@dataclass(frozen=True)
class RefineOptions:
    """The refinement algorithm's knobs (see :func:`refine_vocabulary`)."""

    max_piece_length: int = 36
    ensure_unicode: bool = True
    shrink: float = 0.75
    em_iterations: int = 1
    final_iterations: int = 1
    min_expected: float = 0.5
    hard: bool = True
    grow: int | None = None
    grow_rounds: int = 6

    def check(self) -> None:
        if not 0.0 < self.shrink < 1.0:
            raise InputError(f"shrink must be between 0 and 1 (the fraction of pieces kept per round), got {self.shrink!r}")
        if self.em_iterations < 1 or self.final_iterations < 1:
            raise InputError("em_iterations and final_iterations must be >= 1")
        if self.max_piece_length < 1:
            raise InputError(f"max_piece_length must be >= 1, got {self.max_piece_length!r}")
        if (self.grow is not None and self.grow < 0) or self.grow_rounds < 0:
            raise InputError("grow and grow_rounds must be >= 0")


def refine_vocabulary(
    corpus: Any,
    seed_counts: Mapping[bytes, Any],
    size: int,
    *,
    workers: int | None = 1,
    cluster: Any = None,
    max_memory: str | int | None = None,
    tmp_dir: str | None = None,
    isolate_digits: bool = False,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    shard_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    stats: dict | None = None,
    **algorithm: Any,
) -> dict[bytes, int]:
    """Refine a candidate vocabulary into at most ``size - 3`` pieces (the model's vocabulary
    size counts the three special ids) by growing it with frequent adjacent pairs and pruning
    it by unigram likelihood loss on ``corpus`` (see the module docstring).

    ``corpus``: anything ``Trainer.train`` accepts (paths, texts); it is chunked exactly as the
    trainer chunks it (pass the trainer's ``isolate_digits``). ``seed_counts``: candidate pieces
    with counts used as the starting probabilities (for example the faithful BNLM model of the
    same size: ``dict(zip(model.pieces, model.counts))``; a larger BNLM seed measured no
    better). ``algorithm`` takes the fields of :class:`RefineOptions`: ``max_piece_length``,
    ``ensure_unicode``, ``shrink``, ``em_iterations``, ``final_iterations``, ``min_expected``,
    ``hard``, ``grow`` (default ``size // 4`` new candidates per round; ``grow=0`` only prunes)
    and ``grow_rounds``. ``workers``/``cluster``/``max_memory``/``tmp_dir`` choose the engine
    and budget as for :class:`~bytepiece.Trainer`. Returns positive integer counts for every
    kept piece, all 256 single bytes included, ready for :meth:`bytepiece.Model.from_counts`.
    ``progress(n)`` is called with input bytes as the corpus is read (every pass reads the
    whole corpus); ``stats``, if given, receives the number of passes, rounds, the final
    log likelihood and the pieces per round.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise InputError(f"workers must be an integer >= 1, got {workers!r}")
    unknown = set(algorithm) - set(RefineOptions.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown refinement option(s): {', '.join(sorted(unknown))}")
    refine_options = RefineOptions(**algorithm)
    refine_options.check()
    _check_size(size)
    _check_seed(seed_counts, refine_options.max_piece_length, refine_options.ensure_unicode)
    budget = default_budget() if max_memory is None else parse_size(max_memory, name="max_memory")
    with open_corpus(corpus, tmp_dir=tmp_dir) as inputs, SpillDir(tmp_dir) as spill, \
            make_engine(cluster, workers=workers) as engine:
        plan = MemoryPlan.make(budget, engine.workers, shard_bytes, sum(src.size for src in inputs.sources))
        shards = plan_shards(inputs.sources, plan.shard_bytes)
        options = PassOptions(6, 2, isolate_digits, refine_options.ensure_unicode, batch_bytes=batch_bytes)
        return refine_on_engine(engine, shards, seed_counts, size, options=options, plan=plan, spill=spill,
                                progress=progress, stats=stats, refine=refine_options)


def _check_size(size: Any) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 256 + FIRST_PIECE_ID:
        raise InputError(f"size must be an integer >= {256 + FIRST_PIECE_ID} (256 bytes + 3 special ids), got {size!r}")


def refine_on_engine(engine: Engine, shards: list[Shard], seed_counts: Mapping[bytes, Any], size: int, *,
                     options: PassOptions, plan: MemoryPlan, spill: SpillDir | None = None,
                     progress: Callable[[int], None] | Progress | None = None, stats: dict | None = None,
                     refine: RefineOptions | None = None, max_piece_length: int | None = None) -> dict[bytes, int]:
    """:func:`refine_vocabulary` on shards of a corpus already planned (the trainer calls this)."""
    opts = refine or RefineOptions(max_piece_length=max_piece_length or 36, ensure_unicode=options.ensure_unicode)
    _check_size(size)
    target = int(size) - FIRST_PIECE_ID
    seed = _check_seed(seed_counts, opts.max_piece_length, opts.ensure_unicode)
    own_spill = spill is None
    spill = spill or SpillDir()
    info: dict[str, Any] = {"rounds": []}
    try:
        passes = _Passes(engine, shards, options, plan, spill, progress, f"refine {size} pass")
        ordered = sorted(seed, key=lambda p: (len(p), p))
        vocab = _Vocab(ordered, np.array([seed[p] for p in ordered], dtype=np.float64))
        n_grow = size // 4 if opts.grow is None else int(opts.grow)
        grows_left = opts.grow_rounds if n_grow > 0 else 0
        while True:
            if grows_left:
                grows_left -= 1
                vocab = _grow(vocab, passes, n_grow, opts.max_piece_length, opts.ensure_unicode)
                info["rounds"].append({"grown": len(vocab.pieces)})
            for _ in range(opts.em_iterations):
                counts, loglik = passes.expectation(vocab, opts.hard)
                if loglik == 0.0 and not counts.any():
                    raise TrainingError("the corpus is empty: nothing to refine the vocabulary on")
                keep = (vocab.lengths == 1) | (counts >= opts.min_expected)
                counts = np.where(vocab.lengths == 1, np.maximum(counts, opts.min_expected), counts)
                vocab = _reduced(vocab, keep, counts)
            info["rounds"].append({"pieces": len(vocab.pieces), "loglik": loglik})
            if len(vocab.pieces) <= target and not grows_left:
                break
            vocab = _prune(vocab, max(target, int(len(vocab.pieces) * opts.shrink)))
        for _ in range(opts.final_iterations):
            counts, loglik = passes.expectation(vocab, True)
            vocab = _Vocab(vocab.pieces, np.maximum(counts, 1.0))
        info["loglik"] = loglik
        info["passes"] = passes.passes
        info["bytes"] = passes.total_bytes
    finally:
        if own_spill:
            spill.close()
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
