"""The training passes work on each distinct chunk once, weighted by how often it occurs
(``training.passes.distinct_chunk_jobs``): the weights must add up to the chunks read, across
every flush of the chunk table, and the models must not change."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bytepiece.corpus import open_corpus, plan_shards, read_shard
from bytepiece.normalize import training_jobs
from bytepiece.training import Trainer, passes
from bytepiece.training.passes import NO_READS, PassOptions, distinct_chunk_jobs

LINES = ["\treturn 0;\n", "}\n", "\n\n", "int main(void)\n", "今天天气很好\n", "x = 1  # 2\n", "", "é\n"]


def _chunks_read(shard, options):
    """Every training chunk of ``shard``, as the passes cut them, with repetition, and the
    number of jobs they come in."""
    out = collections.Counter()
    jobs = 0
    for batch in read_shard(shard, purpose="train", errors=options.errors, batch_bytes=options.batch_bytes):
        for buf, bounds, lo, hi in training_jobs(batch, isolate_digits=options.isolate_digits,
                                                 job_bytes=options.job_bytes):
            jobs += 1
            for c in range(lo, hi):
                out[buf[bounds[c]:bounds[c + 1]].tobytes()] += 1
    return out, jobs


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from(LINES), min_size=1, max_size=12).map("".join), min_size=1, max_size=40),
       st.sampled_from([1, 16, 64, 1 << 20]), st.sampled_from([8, 100, None]), st.booleans())
def test_weights_add_up_to_the_chunks_read(tmp_path_factory, docs, distinct_bytes, job_bytes, isolate_digits):
    path = tmp_path_factory.mktemp("distinct") / "corpus.txt"
    path.write_text("".join(d.replace("\n", " ") + "\n" for d in docs if d.strip()) or "a\n", encoding="utf-8")
    options = PassOptions(6, 2, isolate_digits, True, batch_bytes=64, job_bytes=job_bytes,
                          distinct_bytes=distinct_bytes)
    with open_corpus(str(path)) as inputs:
        for shard in plan_shards(inputs.sources, 1 << 20):
            expected, jobs = _chunks_read(shard, options)
            reads = [NO_READS]
            got: collections.Counter = collections.Counter()
            tables = []
            for buf, bounds, weights, lo, hi in distinct_chunk_jobs(shard, options, reads):
                assert 1 <= hi - lo and (job_bytes is None or hi - lo == 1 or bounds[hi] - bounds[lo] <= job_bytes)
                if lo == 0:
                    tables.append([])
                for c in range(lo, hi):
                    chunk = buf[bounds[c]:bounds[c + 1]].tobytes()
                    tables[-1].append(chunk)
                    got[chunk] += int(weights[c])
            assert got == expected
            for chunks in tables:  # within one table every chunk is there once
                assert len(chunks) == len(set(chunks))
            # a table that takes distinct_bytes (its bytes and 48 a chunk) is done with after its job
            if distinct_bytes == 1:
                assert len(tables) == jobs
            elif distinct_bytes == 1 << 20:
                assert len(tables) == 1
            else:
                assert 1 <= len(tables) <= jobs
            assert reads[0].bytes == sum(len(k) * v for k, v in expected.items())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from(LINES), min_size=1, max_size=12).map("".join), min_size=1, max_size=40),
       st.sampled_from([1, 64, 300, 1 << 20]), st.sampled_from([8, 100, None]))
def test_the_dict_for_small_shards_gives_the_jobs_of_the_table_kernel(tmp_path_factory, docs, distinct_bytes,
                                                                      job_bytes):
    """Small shards skip the hash table kernel (its compile is a first run's cost); the jobs,
    their chunk order, weights and flush points must be the kernel's exactly."""
    path = tmp_path_factory.mktemp("dict") / "corpus.txt"
    path.write_text("".join(d.replace("\n", " ") + "\n" for d in docs if d.strip()) or "a\n", encoding="utf-8")
    options = PassOptions(6, 2, False, True, batch_bytes=64, job_bytes=job_bytes, distinct_bytes=distinct_bytes)

    def jobs(python_max):
        saved = passes.PYTHON_DISTINCT_MAX
        passes.PYTHON_DISTINCT_MAX = python_max
        try:
            reads = [NO_READS]
            out = [(buf[bounds[lo]:bounds[hi]].tobytes(), (bounds[lo:hi + 1] - bounds[lo]).tolist(),
                    weights[lo:hi].tolist(), buf.flags.writeable, buf.dtype, bounds.dtype, weights.dtype)
                   for buf, bounds, weights, lo, hi in distinct_chunk_jobs(shard, options, reads)]
            return out, reads[0]
        finally:
            passes.PYTHON_DISTINCT_MAX = saved

    with open_corpus(str(path)) as inputs:
        for shard in plan_shards(inputs.sources, 1 << 20):
            assert jobs(1 << 40) == jobs(-1)


def test_flushing_the_chunk_table_does_not_change_the_model(monkeypatch):
    """A table flushed after every job (distinct chunks seen again in the next one) gives
    the model of one table per shard."""
    text = ["\treturn 0;\n}\n" * (i % 5 + 1) + f"int f{i % 37}(void)\n" + "今天天气很好 " * (i % 3) + "\n"
            for i in range(2000)]

    def train():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Trainer(max_vocab_size=400, workers=1, progress=False, batch_bytes=4096).train(text)[0]
        return dict(zip(model.pieces, model.counts.tolist()))

    whole = train()
    monkeypatch.setattr(passes, "DISTINCT_CHUNK_BYTES", 0)
    assert train() == whole


@pytest.mark.parametrize("weight", [1, 3])
def test_count_pieces_weight_multiplies_counts(weight):
    """A chunk of weight w counts its pieces as w copies of it would."""
    from bytepiece.kernels.bnlm import count_pieces
    from bytepiece.kernels.bytetable import ByteTable
    from bytepiece.training.passes import NgramModel

    ones = np.log(np.full(256, 1 / 256))
    twos = np.full(1 << 16, -np.inf)
    model = NgramModel(ones, twos, np.zeros(32, np.uint64), 16, 256)
    chunk = b"abcabc"

    def run(buf_bytes, weights):
        buf = np.frombuffer(buf_bytes, np.uint8)
        bounds = np.arange(0, len(buf) + 1, len(chunk), dtype=np.int64)
        table = ByteTable.new()
        arrays = count_pieces(buf, bounds, weights, 0, len(bounds) - 1, 3, True, model.ones, model.twos,
                              model.table, model.cap, *tuple(table)[:6], table.meta)
        n = table.size
        return dict(zip((arrays[5][s:s + n_].tobytes() for s, n_ in zip(arrays[2][:n], arrays[3][:n])),
                        arrays[4][:n].tolist())), int(table.meta[2])

    assert run(chunk, np.array([weight], np.int64)) == run(chunk * weight, np.ones(weight, np.int64))
