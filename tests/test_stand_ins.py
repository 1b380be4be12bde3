"""Small inputs skip the kernels (``bytepiece.kernels.stand_ins``): each numpy or Python stand-in
must give exactly what its kernel gives, arrays, dtypes and order, on random and on real input.
(The regex stand-in of chunking is checked in ``test_chunking``, the Python re-segmentation of
pruning in ``test_resegment``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

from bytepiece.corpus import describe_sources, plan_shards
from bytepiece.engine.local import LocalEngine
from bytepiece.kernels.runs import gather_pieces, kernel_gather_pieces, kernel_prefix_keys, prefix_keys
from bytepiece.kernels.stand_ins import kernels_only, small
from bytepiece.progress import Progress
from bytepiece.training.build import count_ngrams, ngram_model
from bytepiece.training.memory_plan import MemoryPlan
from bytepiece.training.passes import PassOptions, count_shard_pieces
from bytepiece.training.spill import SpillDir
from bytepiece_data import data_file

SAMPLE = Path(data_file("sample_corpus.txt"))
pieces_st = st.lists(st.binary(max_size=20), min_size=1, max_size=40)


def _arena(pieces):
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(bytearray(b"".join(pieces)), np.uint8), offsets


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@given(pieces_st, st.randoms(use_true_random=False))
def test_gather_pieces_by_numpy_is_the_kernel(pieces, rnd):
    arena, offsets = _arena(pieces)
    n = len(pieces)
    order = np.array(rnd.sample(range(n), rnd.randint(0, n)), np.int64)
    hashes = np.array([rnd.getrandbits(64) for _ in range(n)], np.uint64)
    counts = np.array([rnd.randint(1, 1 << 40) for _ in range(n)], np.int64)
    args = (order, hashes, counts, offsets[:-1], np.diff(offsets), arena)
    _same(gather_pieces(*args), kernel_gather_pieces(*args))


@given(pieces_st, st.sampled_from([0, 3, 8, 16]))
def test_prefix_keys_by_numpy_are_the_kernel(pieces, skip):
    arena, offsets = _arena(pieces)
    _same([prefix_keys(arena, offsets, skip)], [kernel_prefix_keys(arena, offsets, skip)])


def test_kernels_only_sends_every_size_to_the_kernels():
    assert small(10, 100) and not small(101, 100)
    with kernels_only():
        assert not small(10, 100)
        with kernels_only():
            pass
        assert not small(10, 100)  # an inner block leaves the outer one in force
    assert small(10, 100)


def test_after_the_large_warm_up_every_input_goes_to_the_kernels(monkeypatch):
    """Once a large corpus's warm-up has loaded every kernel, the stand-ins would only be slower
    (and hold the GIL): small inputs of that process go to the kernels too."""
    from bytepiece.training import warmup

    monkeypatch.setattr(warmup, "_done", set())  # as in a fresh process (another test may have warmed up)
    assert small(10, 100)
    warmup.warm_up_here(("text",), large=False)
    assert small(10, 100)
    warmup.warm_up_here(("text",), large=True)
    assert not small(10, 100)


def _both_ways(path: Path, options: PassOptions):
    """Pass 2 of every shard of ``path`` by the dict stand-in and by the table kernel."""
    with SpillDir(path.parent) as spill:
        shards = plan_shards(describe_sources([path]))
        plan = MemoryPlan.make(256 << 20, 1)
        counts, _, _ = count_ngrams(LocalEngine(1), shards, options, plan, spill, Progress(False))
        model, _ = ngram_model(counts, options, plan, Progress(False))
        for shard in shards:
            assert small(shard.size, 2 << 20)
            by_dict = count_shard_pieces(shard, model, options)
            with kernels_only():
                by_table = count_shard_pieces(shard, model, options)
            yield by_dict, by_table


LINES = ["\treturn 0;\n", "}\n", "\n\n", "int main(void)\n", "今天天气很好\n", "x = 1  # 2\n", "é\n", "ab"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=80).map("".join), st.integers(3, 7),
       st.sampled_from([8, 100, None]), st.booleans())
def test_small_shards_count_pieces_as_the_table_kernel_does(tmp_path_factory, text, order, job_bytes, ensure_unicode):
    """The dict path of pass 2 (several jobs, repeated chunks with weights) gives the table
    kernel's run: pieces in (hash, bytes) order, counts, and the number of pieces seen."""
    path = tmp_path_factory.mktemp("pieces") / "corpus.txt"
    path.write_text(text if text.strip() else "a\n", encoding="utf-8")
    options = PassOptions(order, 1, False, ensure_unicode, batch_bytes=64, job_bytes=job_bytes)
    for by_dict, by_table in _both_ways(path, options):
        _same(by_dict.run, by_table.run)
        assert by_dict.seen == by_table.seen


def test_pass_two_on_real_text_is_the_table_kernels(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_bytes(SAMPLE.read_bytes()[:300_000].rsplit(b"\n", 1)[0] + b"\n")
    for by_dict, by_table in _both_ways(path, PassOptions(6, 2, False, True)):
        assert by_dict.run.size > 1000
        _same(by_dict.run, by_table.run)
        assert by_dict.seen == by_table.seen
