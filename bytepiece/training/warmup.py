"""Compile (or load from numba's cache) every training kernel before the clock starts.

The first run after an install compiles the kernels it needs (for README's training command
the BNLM segmentation alone, about 4 s of CPU on a 2 GHz VM; for a corpus above
``LARGE_CORPUS_BYTES`` every training kernel, about 20 s); later runs load them from the cache in
well under a second. Doing it up front, on a tiny corpus that reaches every kernel, keeps
compilation out of the reported phase times and lets the CLI say what is happening. On a Dask
cluster every worker process warms up too (each has its own numba state).
"""

from __future__ import annotations

import time

#: what this process has warmed up: ``(format, through the kernels alone)``, and "kernels" once
#: every kernel is loaded
_done: set[object] = set()
_TEXTS = ["warm up the kernels: 训练 a tokenizer 12 34\n", "abab abab\n\n", "x" * 40 + "\n"] * 4


#: corpora above this size warm up every kernel, those that only large inputs reach too. Below it
#: their numpy and Python stand-ins (``kernels.stand_ins``) take every input such a corpus gives:
#: shards of at most 2 MB (``passes.PYTHON_DISTINCT_MAX``, ``passes.NUMPY_GRAMS_MAX``), at most
#: 16 MB of n-gram counts (``build.NUMPY_DERIVE_BYTES``), about 120k kept n-grams a MB
#: (``build.PYTHON_INSERT_MAX``), about 16k distinct pieces a MB (``trie.PYTHON_SORT_MAX``,
#: ``dropped.NUMPY_BUCKETS_MAX``, ``runs.NUMPY_PIECES_MAX``, ``pruning.PYTHON_CANDIDATES_MAX``).
#: So a small corpus, README's sample first of all, never compiles them (about 15 s of a first
#: run's CPU on a 2 GHz VM). A larger one compiles them here, so that no phase time counts
#: compiling.
LARGE_CORPUS_BYTES = 1 << 20


def warm_up_here(formats: tuple[str, ...] = ("text",), large: bool = True) -> float:
    """Warm up this process for corpora of ``formats`` (once each), and with ``large`` for a
    corpus above ``LARGE_CORPUS_BYTES``; returns the seconds it took.

    Only the readers a run needs are compiled: the JSON Lines parser alone is half of all the
    training kernels' compile time, and a run on text files never uses it. A large corpus's
    warm-up runs its samples through the kernels alone, and the process then uses the kernels
    for every input (``stand_ins.prefer_kernels``), so it never loads the segmentation that only
    the stand-ins' path calls."""
    from ..kernels.stand_ins import kernels_only, prefer_kernels

    kernels = large or "kernels" in _done  # once loaded, every later run uses them
    needed = [f for f in dict.fromkeys(("text", *formats))
              if f in ("text", "jsonl") and (f, kernels) not in _done]
    if not needed:
        return 0.0
    t0 = time.perf_counter()
    for fmt in needed:
        if kernels:
            # the text sample in several shards and jobs, whose counts a large run merges
            with kernels_only():
                _warm_up(fmt, split=fmt == "text")
        else:
            _warm_up(fmt)
        _done.add((fmt, kernels))
    if kernels:
        _done.add("kernels")
        prefer_kernels()
    return time.perf_counter() - t0


def _warm_up(fmt: str, split: bool = False) -> None:
    import tempfile
    from pathlib import Path

    from ..corpus import describe_sources, plan_shards, spool_texts
    from ..corpus.shards import MIN_SHARD_BYTES
    from ..engine import make_engine
    from .spill import SpillDir
    from ..progress import Progress
    from .build import count_ngrams, count_pieces, ngram_model, with_all_bytes
    from .memory_plan import MemoryPlan
    from .passes import PassOptions
    from .pruning import PieceSet

    with tempfile.TemporaryDirectory(prefix="bytepiece-warmup-") as tmp:
        texts = _TEXTS * 30 if split else _TEXTS  # split: three shards of MIN_SHARD_BYTES
        if fmt == "jsonl":
            path, _, _ = spool_texts(texts, tmp)
        else:
            path = Path(tmp) / "warm-up.txt"
            path.write_text("".join(texts), encoding="utf-8")
        shards = plan_shards(describe_sources([Path(path)]), *([MIN_SHARD_BYTES] if split else []))
        engine = make_engine(None, workers=1)
        plan = MemoryPlan.make(64 << 20, 1)
        options = PassOptions(6, 2, True, True, job_bytes=64 if split else None)
        quiet = Progress(False)
        with SpillDir(tmp) as spill:
            counts, _, _ = count_ngrams(engine, shards, options, plan, spill, quiet)
            model, _ = ngram_model(counts, options, plan, quiet)
            pieces, _ = count_pieces(engine, shards, model, options, plan, spill, quiet, max_piece_length=36)
            piece_set = PieceSet(with_all_bytes(pieces.candidates), engine=engine,
                                 dropped_bytes=pieces.dropped.piece_bytes)
            piece_set.absorb(pieces.dropped.batches(1 << 20))
            piece_set.prune_redundant()


def warm_up(engine, formats: tuple[str, ...] = ("text",), large: bool = True) -> None:
    """Warm up this process and, for a cluster, every worker."""
    warm_up_here(formats, large)
    engine.run_on_workers(warm_up_here, formats, large)
