"""Training at scale: the same model for every plan (workers, memory budget, Dask), temporary
files removed on success, error and Ctrl-C, and the error paths of the budget and the cluster."""

from __future__ import annotations

import json
import random
import re
import warnings

import pytest

from bytepiece import TrainingError, load_model
from bytepiece.training import Trainer, build, memory_plan
from bytepiece.training.warmup import warm_up_here
from bytepiece_cli.app import app

WORDS = ("the quick brown fox jumps over lazy dogs while tokenizers split text into pieces "
         "def return import numpy as np for i in range self").split()
HANZI = "今天天气很好我们去公园散步分词器把文本切成片段常用的词语会成为一个词元"


def _corpus(n: int = 1500, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(3, 18)
        parts = [rng.choice(WORDS) if rng.random() < 0.7 else HANZI[rng.randrange(len(HANZI) - 2):][:rng.randint(1, 3)]
                 for _ in range(k)]
        if rng.random() < 0.2:
            parts.append(str(rng.randint(0, 10 ** 6)))
        out.append(" ".join(parts) + "\n")
    return out


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    texts = _corpus()
    # JSON Lines with multi-line documents: two lines per document
    path.write_text("".join(json.dumps({"text": a + b}) + "\n" for a, b in zip(texts[::2], texts[1::2])),
                    encoding="utf-8")
    return path


def _train(path, **kwargs):
    options = dict(max_vocab_size=[900, 500], progress=False, **kwargs)
    trainer = Trainer(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = trainer.train(str(path))
    return trainer, [dict(zip(m.pieces, m.counts.tolist())) for m in models]


@pytest.fixture(scope="module")
def reference(corpus_path):
    return _train(corpus_path, workers=1)[1]


def _force_spilling(monkeypatch):
    """Reducers hold at most a few KB of runs: every phase spills and merges from disk."""
    monkeypatch.setattr(memory_plan, "MIN_REDUCER_BYTES", 1)
    monkeypatch.setattr(memory_plan.MemoryPlan, "pass1_reducer_limit", lambda self: 4096)
    monkeypatch.setattr(memory_plan.MemoryPlan, "pass2_reducer_limit", lambda self, model_bytes: 4096)


@pytest.mark.parametrize("workers, shard_bytes", [(2, None), (2, 8 << 10), (3, 4 << 10)])
def test_threads_and_shards_do_not_change_the_model(corpus_path, reference, workers, shard_bytes):
    trainer, models = _train(corpus_path, workers=workers, shard_bytes=shard_bytes)
    assert models == reference
    assert trainer.report.plan["workers"] == workers


def test_spilling_every_phase_gives_the_same_model(corpus_path, reference, tmp_path, monkeypatch):
    _force_spilling(monkeypatch)
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    trainer, models = _train(corpus_path, workers=2, shard_bytes=8 << 10, tmp_dir=spill_dir)
    assert models == reference
    phases = trainer.report.phases
    assert phases["count n-grams"].spilled_bytes > 0 and phases["count pieces"].spilled_bytes > 0
    assert phases["prune n-grams"].partitions > 1 and phases["count pieces"].partitions > 1
    assert not any(spill_dir.iterdir())  # removed after success


def test_refine_spilling_and_threads_give_the_same_model(corpus_path, tmp_path, monkeypatch):
    _, plain = _train(corpus_path, workers=1, refine=True)
    _force_spilling(monkeypatch)
    _, spilled = _train(corpus_path, workers=2, refine=True, shard_bytes=8 << 10, tmp_dir=tmp_path)
    assert spilled == plain


def test_metadata_reports_phases_and_plan(corpus_path, tmp_path):
    trainer, _ = _train(corpus_path, workers=2)
    path = tmp_path / "m.model"
    trainer.save(path)
    meta = json.loads((tmp_path / "m.900.model.meta.json").read_text())
    assert set(meta["phases"]) == {"count n-grams", "prune n-grams", "count pieces", "prune pieces"}
    for phase in meta["phases"].values():
        assert phase["wall_s"] >= 0 and phase["peak_rss_mb"] > 0
    assert meta["plan"]["backend"] == "local" and meta["plan"]["shards"] >= 1
    assert "compile" in meta["timings_s"] and meta["timings_s"]["total"] < sum(meta["timings_s"].values())


@pytest.mark.parametrize("failure", [RuntimeError("injected failure"), KeyboardInterrupt()])
def test_temporary_files_are_removed_on_error_and_interrupt(corpus_path, tmp_path, monkeypatch, failure):
    """The run fails in the second pass, after both passes' counts were spilled to disk."""
    from bytepiece.training import build

    _force_spilling(monkeypatch)
    real = build.count_shard_pieces
    seen = []

    def failing(shard, model, options):
        seen.append(shard.index)
        if len(seen) == 3:
            raise failure
        return real(shard, model, options)

    monkeypatch.setattr(build, "count_shard_pieces", failing)
    with pytest.raises(type(failure)):
        _train(corpus_path, workers=1, shard_bytes=4 << 10, tmp_dir=tmp_path)
    assert len(seen) == 3
    assert not any(tmp_path.iterdir())


def test_a_failing_partition_split_stops_the_run_and_removes_its_files(corpus_path, tmp_path, monkeypatch):
    """Pass 2's partitions are split on threads: an error in one reaches the caller (no hang,
    no later partition filed) and the spilled files go."""
    from bytepiece.training import build

    _force_spilling(monkeypatch)
    real = build._split_partition
    calls = []

    def failing(part, *args):
        calls.append(part)
        if len(calls) == 2:
            raise RuntimeError("injected split failure")
        return real(part, *args)

    monkeypatch.setattr(build, "_split_partition", failing)
    with pytest.raises(RuntimeError, match="injected split failure"):
        _train(corpus_path, workers=2, shard_bytes=8 << 10, tmp_dir=tmp_path)
    assert len(calls) >= 2
    assert not any(tmp_path.iterdir())


def _record_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def recorded(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return calls


def test_budget_below_any_corpus_is_refused_before_reading(corpus_path, monkeypatch):
    """A budget below what the second pass needs with the smallest n-gram model is refused
    before the first pass reads anything."""
    read = _record_calls(monkeypatch, build, "count_shard_grams")
    with pytest.raises(TrainingError, match=r"too small for any corpus: the second pass needs .* \(--max-memory \d+M\)"):
        _train(corpus_path, workers=1, max_memory="64K", shard_bytes=4 << 10)
    assert read == []


@pytest.fixture(scope="module")
def many_ngrams(tmp_path_factory):
    """400 KB of random words over ten letters: an n-gram table of about 4 MB."""
    rng = random.Random(3)
    path = tmp_path_factory.mktemp("ngrams") / "random.txt"
    path.write_text("".join(" ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7)))
                                     for _ in range(12)) + "\n" for _ in range(6000)), encoding="utf-8")
    return path


def test_budget_too_small_for_the_ngram_table(many_ngrams, monkeypatch):
    """Refused as soon as the n-gram table's size is known (before it is built, and before the
    second pass), with the smallest budget that works: that one works, one MiB less does not."""
    import bytepiece.kernels.ngrams as ngrams

    warm_up_here()  # compiled first: the warm-up runs both passes on a sample
    built = _record_calls(monkeypatch, ngrams, "derive_long")
    second_pass = _record_calls(monkeypatch, build, "count_shard_pieces")
    options = dict(max_vocab_size=500, workers=1, shard_bytes=4 << 10, progress=False)
    with pytest.raises(TrainingError, match=r"cannot hold the n-gram table .* smallest budget that works here is "
                                            r"[\d.]+ MiB \(--max-memory (\d+)M\)") as refused:
        Trainer(max_memory="2M", **options).train(str(many_ngrams))
    assert built == [] and second_pass == []
    least = int(re.search(r"--max-memory (\d+)M", str(refused.value)).group(1))
    with pytest.raises(TrainingError, match=f"--max-memory {least}M"):
        Trainer(max_memory=f"{least - 1}M", **options).train(str(many_ngrams))
    Trainer(max_memory=f"{least}M", **options).train(str(many_ngrams))  # works the first time


@pytest.mark.parametrize("workers", [1, 2, 8])
@pytest.mark.parametrize("input_bytes", [None, 10 << 20, 1_381_258_351])
@pytest.mark.parametrize("shard_bytes", [None, 4 << 10, 64 << 20])
def test_suggested_budget_covers_its_own_plan(workers, input_bytes, shard_bytes):
    """A larger budget plans larger shards, so more work in flight: the budget a refusal
    suggests must hold the second pass under the plan made for that budget, not for the budget
    refused (given 5M, the old suggestion of 185M was then refused with 207M, 211M, 213M)."""
    for model_bytes in (1 << 20, 166 << 20, 1200 << 20):
        refused = memory_plan.MemoryPlan.make(1 << 20, workers, shard_bytes, input_bytes)
        with pytest.raises(TrainingError) as error:
            refused.pass2_reducer_limit(model_bytes)
        least = int(re.search(r"--max-memory (\d+)M", str(error.value)).group(1))
        memory_plan.MemoryPlan.make(least << 20, workers, shard_bytes, input_bytes).pass2_reducer_limit(model_bytes)
        with pytest.raises(TrainingError):
            memory_plan.MemoryPlan.make((least - 1) << 20, workers, shard_bytes, input_bytes).pass2_reducer_limit(
                model_bytes)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_model(corpus_path, reference, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    _force_spilling(monkeypatch)
    trainer, models = _train(corpus_path, cluster="local:2", shard_bytes=8 << 10, tmp_dir=tmp_path)
    assert models == reference
    plan = trainer.report.plan
    assert plan["backend"] == "dask" and plan["processes"] == 2
    peaks = trainer.report.phases["count pieces"].worker_peak_rss_mb
    assert len(peaks) == 2 and all(v > 0 for v in peaks.values())
    assert not any(tmp_path.iterdir())


def test_cli_plan_options_and_errors(runner, corpus_path, tmp_path):
    out = tmp_path / "m.model"
    result = runner.invoke(app, ["train", str(corpus_path), "-o", str(out), "-v", "500", "--max-memory", "512M",
                                 "--workers", "2", "--tmp-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "budget 512.0 MiB" in result.output and "time: count pieces" in result.output
    assert load_model(out).vocab_size <= 500
    bad = runner.invoke(app, ["train", str(corpus_path), "-o", str(tmp_path / "x.model"), "--max-memory", "lots"])
    assert bad.exit_code == 2 and "--max-memory must be a size such as 1G" in bad.output  # a usage error
    assert len(bad.output.strip().splitlines()) == 1
    missing = runner.invoke(app, ["train", str(corpus_path), "-o", str(tmp_path / "y.model"),
                                  "--tmp-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert not (tmp_path / "x.model").exists() and not (tmp_path / "y.model").exists()


@pytest.mark.slow
def test_cli_unreachable_scheduler(runner, corpus_path, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from bytepiece.engine import dask as dask_engine

    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT_S", 2)
    previous = tmp_path / "m.model"
    previous.write_text("previous model")
    result = runner.invoke(app, ["train", str(corpus_path), "-o", str(previous), "--force",
                                 "--cluster", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert previous.read_text() == "previous model"
