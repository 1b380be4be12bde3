"""The bar of a training pass moves within a shard on a local engine (one gzip file is one shard,
which used to show 0 until the pass ended) and always sums to the input size, on any engine."""

from __future__ import annotations

import gzip
import random
import threading

import pytest

from bytepiece.corpus import describe_sources, plan_shards
from bytepiece.engine import make_engine
from bytepiece.engine.base import Engine
from bytepiece.progress import ShardBar
from bytepiece.training.passes import PassOptions, count_shard_grams, map_shards

OPTIONS = PassOptions(order=4, min_count=2, isolate_digits=False, ensure_unicode=True, batch_bytes=32 << 10)


@pytest.fixture(scope="module")
def gzip_corpus(tmp_path_factory):
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "tokens", "bytes", "piece", "中文", "über"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 20))) for _ in range(20000)]
    path = tmp_path_factory.mktemp("gz") / "corpus.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
        f.write("\n".join(lines) + "\n")
    return path


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.calls.append(n)


class _RemoteLike(Engine):
    """An engine whose tasks do not run in this thread's reach (like Dask): per-shard progress only."""

    backend = "remote-like"

    def map(self, fn, items, *args, window=None, error=None):
        for item in items:
            yield item, fn(item, *args)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_gzip_shard_moves_the_bar_as_it_is_read(gzip_corpus, workers):
    shards = plan_shards(describe_sources([gzip_corpus]))
    assert len(shards) == 1  # a compressed file cannot be split
    advance = _Recorder()
    seen_during_task: list[int] = []

    def task(shard, options):
        result = count_shard_grams(shard, options)
        seen_during_task.append(sum(advance.calls))
        return result

    with make_engine(workers=workers) as engine:
        results = list(map_shards(engine, task, shards, OPTIONS, advance=advance))
    assert len(results) == 1
    assert sum(advance.calls) == shards[0].size
    assert seen_during_task[0] > 0  # moved before the shard's result arrived
    assert len(advance.calls) > 3


def test_a_remote_engine_advances_per_shard_and_sums_to_the_input(gzip_corpus, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_bytes(gzip.decompress(gzip_corpus.read_bytes()))
    shards = plan_shards(describe_sources([gzip_corpus, plain]), shard_bytes=256 << 10)
    advance = _Recorder()
    results = list(map_shards(_RemoteLike(), count_shard_grams, shards, OPTIONS, advance=advance))
    assert [s for s, _ in results] == shards
    assert advance.calls == [s.size for s in shards]


def test_shard_bar_never_overshoots_a_shard():
    advance = _Recorder()
    bar = ShardBar(advance)
    report = bar.reading(1, 100)
    report(60)
    report(60)  # a reader that over-reports (e.g. read-ahead past the shard's end) is capped
    bar.done(1, 100)
    bar.done(2, 50)  # a shard that reported nothing gets its whole size at the end
    assert advance.calls == [60, 40, 50]


class _Phases:
    """A Progress that records each phase's total and what was advanced in it."""

    def __init__(self) -> None:
        self.phases: dict[str, list] = {}

    def phase(self, description, total=None, *, unit="bytes", transient=False):
        import contextlib

        record = self.phases.setdefault(description, [total, 0, unit])

        @contextlib.contextmanager
        def run():
            def advance(n):
                record[1] += n
            yield advance
        return run()

    def status(self, message):
        import contextlib

        return contextlib.nullcontext()


def test_merging_pass_two_counts_has_a_bar_by_partition(gzip_corpus, monkeypatch):
    """Audit: after the count pieces bar reached its end, merging the spilled counts ran with
    nothing on the screen (61 s of a 146 s run on 138 MB)."""
    from bytepiece.training import build
    from bytepiece.training.memory_plan import MemoryPlan
    from bytepiece.training.spill import SpillDir

    shards = plan_shards(describe_sources([gzip_corpus]))
    plan = MemoryPlan.make(256 << 20, 1)
    phases = _Phases()
    with make_engine(None, workers=1) as engine, SpillDir() as spill:
        counts, _, _ = build.count_ngrams(engine, shards, OPTIONS, plan, spill, phases)
        model, _ = build.ngram_model(counts, OPTIONS, plan, phases)
        _, report = build.count_pieces(engine, shards, model, OPTIONS, plan, spill, phases, max_piece_length=16)
    total, done, unit = phases.phases["merge counts"]
    assert unit == "partitions" and total == report.partitions == done >= 1
