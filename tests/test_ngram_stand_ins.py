"""The numpy and Python stand-ins of the n-gram kernels (``bytepiece.kernels.ngrams``) give
exactly what the kernels give: the same arrays, dtypes and order, and a bit-identical score table
(the same slots, not just the same lookups), on random input and on real text; and the passes
that choose between them by size give the same results either way."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from bytepiece.corpus import describe_sources, plan_shards
from bytepiece.engine.local import LocalEngine
from bytepiece.kernels.ngrams import (count_grams, count_long, derive_long, insert_scores, numpy_count_grams,
                                      numpy_count_long, numpy_derive_long, numpy_prefix_counts, prefix_counts,
                                      python_insert_scores, table_counts)
from bytepiece.kernels.stand_ins import kernels_only
from bytepiece.progress import Progress
from bytepiece.training import build, passes
from bytepiece.training.build import count_ngrams, ngram_model
from bytepiece.training.memory_plan import MemoryPlan
from bytepiece.training.passes import PassOptions, count_shard_grams
from bytepiece.training.spill import SpillDir

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_corpus.txt"

# chunks as a job has them: any bytes, some chunks repeated (weights), an empty one now and then
chunks_st = st.lists(st.binary(max_size=40), min_size=1, max_size=30)
weights_st = st.sampled_from([1, 1, 1, 2, 5, 1 << 40])


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def _job(chunks):
    """(buf, bounds) of chunks laid end to end, the buffer writable (as a job's is)."""
    buf = np.frombuffer(bytearray(b"".join(chunks)), np.uint8)
    bounds = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=bounds[1:])
    return buf, bounds


def _kernel_count(buf, bounds, weights, lo, hi, order, bits=10):
    table, bits = count_grams(buf, bounds, weights, lo, hi, order, bits)
    keys = table[0::2]
    keys = np.sort(keys[keys != 0])
    return keys, table_counts(table, bits, keys)


def _maximal_grams(chunks, weights, order):
    buf, bounds = _job(chunks)
    return numpy_count_grams(buf, bounds, weights, 0, len(chunks), order)


@given(chunks_st, st.data(), st.integers(1, 7))
def test_count_grams_by_numpy_is_the_kernel(chunks, data, order):
    """Sorted distinct maximal grams and their weighted counts, for any job (chunks lo..hi-1 of
    a longer buffer: no byte outside them counts)."""
    buf, bounds = _job(chunks)
    weights = np.array([data.draw(weights_st) for _ in chunks], np.int64)
    lo = data.draw(st.integers(0, len(chunks) - 1))
    hi = data.draw(st.integers(lo + 1, len(chunks)))
    _same(numpy_count_grams(buf, bounds, weights, lo, hi, order), _kernel_count(buf, bounds, weights, lo, hi, order))


def test_count_grams_by_numpy_on_a_grown_table():
    """Many distinct grams (the kernel's table doubles twice): still the kernel's keys and counts."""
    rng = np.random.default_rng(7)
    chunks = [bytes(rng.integers(0, 256, 50, dtype=np.uint8)) for _ in range(40)]
    buf, bounds = _job(chunks)
    weights = rng.integers(1, 4, len(chunks)).astype(np.int64)
    got = numpy_count_grams(buf, bounds, weights, 0, len(chunks), 6)
    _same(got, _kernel_count(buf, bounds, weights, 0, len(chunks), 6))
    assert len(got[0]) > 1 << 10


@given(chunks_st, st.lists(weights_st, min_size=30, max_size=30), st.integers(1, 7),
       st.integers(0, 1 << 20))
def test_prefix_counts_by_numpy_is_the_kernel(chunks, weights, order, start):
    """Added to what the tables already hold, as the kernel adds."""
    keys, counts = _maximal_grams(chunks, np.array(weights[:len(chunks)], np.int64), order)
    tables = []
    for fn in (prefix_counts, numpy_prefix_counts):
        ones = np.full(256, start, np.int64)
        twos = np.arange(1 << 16, dtype=np.int64) * start
        fn(keys, counts, ones, twos)
        tables.append((ones, twos))
    _same(*tables)


@given(chunks_st, st.lists(weights_st, min_size=30, max_size=30), st.integers(1, 7), st.integers(1, 3), st.data())
def test_derive_long_by_numpy_is_the_kernel(chunks, weights, order, min_count, data):
    """The kept n-grams of length >= 3 in post-order with their counts and parents' counts, and
    how many there are, for a whole run and for any slice of it (a partition)."""
    keys, counts = _maximal_grams(chunks, np.array(weights[:len(chunks)], np.int64), order)
    twos = np.zeros(1 << 16, np.int64)
    prefix_counts(keys, counts, np.zeros(256, np.int64), twos)
    lo = data.draw(st.integers(0, len(keys)))
    hi = data.draw(st.integers(lo, len(keys)))
    for k, c in ((keys, counts), (keys[lo:hi], counts[lo:hi])):
        assert numpy_count_long(k, c, order, min_count) == count_long(k, c, order, min_count)
        _same(numpy_derive_long(k, c, order, min_count, twos), derive_long(k, c, order, min_count, twos))


def test_derive_long_by_numpy_orders_extensions_first():
    """Post-order where a byte 0xFF follows a prefix (the fill of the sort key) and where a
    gram ends in zero bytes (the key's padding): each string after all its extensions."""
    chunks = [b"ab\xff\xffc", b"ab\xff\xff", b"ab\xff", b"ab\x00\x00", b"ab\x00", b"ab\xfe\xff\xff"] * 2
    keys, counts = _maximal_grams(chunks, np.ones(len(chunks), np.int64), 7)
    twos = np.zeros(1 << 16, np.int64)
    prefix_counts(keys, counts, np.zeros(256, np.int64), twos)
    got = numpy_derive_long(keys, counts, 7, 1, twos)
    _same(got, derive_long(keys, counts, 7, 1, twos))
    grams = [int(k).to_bytes(8, "big")[:int(k) & 0xFF] for k in got[0]]
    assert grams.index(b"ab\xff\xffc") < grams.index(b"ab\xff\xff") < grams.index(b"ab\xff")


@st.composite
def _insertions(draw):
    """Distinct keys (never EMPTY) with scores, some already in a table of ``cap`` slots: a high
    load, so clusters run together and wrap around the end."""
    n = draw(st.integers(0, 80))
    cap = draw(st.integers(n + 1, n + 30))
    raw = draw(st.lists(st.integers(1, (1 << 64) - 1), min_size=n, max_size=n, unique=True))
    keys = np.array(raw, np.uint64)
    scores = np.array(draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)),
                      np.float64)
    first = draw(st.integers(0, n))
    return cap, keys, scores, first


@given(_insertions())
def test_insert_scores_in_python_is_the_kernels_table(insertions):
    """Bit for bit the kernel's table, also when keys go into a table already partly filled."""
    cap, keys, scores, first = insertions
    tables = []
    for insert in (insert_scores, python_insert_scores):
        table = np.zeros(2 * cap, np.uint64)
        insert(table, cap, keys[:first], scores[:first])
        insert(table, cap, keys[first:], scores[first:])
        tables.append(table)
    np.testing.assert_array_equal(tables[0], tables[1])
    assert sorted(tables[1][0::2][tables[1][0::2] != 0].tolist()) == sorted(keys.tolist())


def test_insert_scores_in_python_keeps_the_score_bits():
    """A NaN's payload and -0.0 survive: the slots hold the bits the kernel writes."""
    keys = np.array([0x616263_0000000003, 0x626364_0000000003], np.uint64)
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_0BAD))[0]
    scores = np.array([nan, -0.0])
    tables = []
    for insert in (insert_scores, python_insert_scores):
        table = np.zeros(2 * 4, np.uint64)
        insert(table, 4, keys, scores)
        tables.append(table)
    np.testing.assert_array_equal(tables[0], tables[1])
    assert 0x7FF8_0000_0000_0BAD in tables[1].tolist() and 1 << 63 in tables[1].tolist()


# -- the passes, both ways, on real text ------------------------------------------------------

@pytest.fixture(scope="module")
def sample_200k(tmp_path_factory):
    """The first 200 KB of the sample corpus, cut after a line."""
    path = tmp_path_factory.mktemp("ngrams") / "sample.txt"
    path.write_bytes(SAMPLE.read_bytes()[:200_000].rsplit(b"\n", 1)[0] + b"\n")
    return path


def _sample_shards(path):
    shards = plan_shards(describe_sources([path]))
    assert all(shard.size <= passes.NUMPY_GRAMS_MAX for shard in shards)
    return shards


@pytest.mark.parametrize("job_bytes", [None, 30_000])
def test_pass_one_on_real_text_is_the_kernels(sample_200k, job_bytes):
    """A shard's maximal grams and 1-/2-gram tables by the stand-ins are the kernels' (one job,
    and several jobs whose runs merge)."""
    options = PassOptions(6, 2, False, True, job_bytes=job_bytes)
    for shard in _sample_shards(sample_200k):
        by_numpy = count_shard_grams(shard, options)
        with kernels_only():
            by_kernels = count_shard_grams(shard, options)
        assert by_numpy.run.size > 10_000
        _same(by_numpy.run, by_kernels.run)
        _same(by_numpy[1:3], by_kernels[1:3])
        assert by_numpy.read == by_kernels.read


def _model(path, options, budget):
    with SpillDir(path.parent) as spill:
        plan = MemoryPlan.make(budget, 1)
        counts, _, _ = count_ngrams(LocalEngine(1), _sample_shards(path), options, plan, spill, Progress(False))
        return ngram_model(counts, options, plan, Progress(False))


@pytest.mark.parametrize("order, min_count, budget", [(6, 2, 256 << 20), (4, 1, 256 << 20), (7, 3, 20 << 20)])
def test_ngram_model_on_real_text_is_the_kernels(sample_200k, order, min_count, budget):
    """The n-gram model (its score table bit for bit) by the stand-ins is the kernels', also when
    it is derived and inserted partition by partition (the smaller budget)."""
    options = PassOptions(order, min_count, False, True)
    model, report = _model(sample_200k, options, budget)
    with kernels_only():
        kernel_model, kernel_report = _model(sample_200k, options, budget)
    assert model.kept - 256 - int(np.isfinite(model.twos).sum()) <= build.PYTHON_INSERT_MAX
    assert model.kept > 20_000 and report.partitions == kernel_report.partitions
    if budget < 64 << 20:
        assert report.partitions > 1
    _same(model[:3], kernel_model[:3])
    assert model[3:] == kernel_model[3:]
