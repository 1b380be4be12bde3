"""Dropped pieces of pruning: every piece comes back exactly once with its count, whatever is
spilled, and a bucket whose pieces cannot be told apart by their first eight bytes is read in
bounded groups (on code, a quarter of the dropped bytes start with ``#define ``)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.training.spill import PieceRun, SpillDir
from bytepiece.training import dropped as dropped_module
from bytepiece.training.dropped import DroppedPieces


def _run(pieces: list[bytes], counts: list[int]) -> PieceRun:
    offsets = np.zeros(len(pieces) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pieces])
    arena = np.frombuffer(b"".join(pieces), np.uint8).copy()
    return PieceRun(np.zeros(len(pieces), np.uint64), np.asarray(counts, np.int64), offsets, arena)


def _contents(runs) -> Counter:
    out: Counter = Counter()
    for run in runs:
        for i in range(run.size):
            out[run.piece(i)] += int(run.counts[i])
    return out


_piece = st.one_of(st.binary(min_size=1, max_size=30), st.binary(max_size=20).map(lambda b: b"#define " + b))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(_piece, st.integers(1, 50)), max_size=60), min_size=1, max_size=6),
       st.integers(0, 4000), st.integers(64, 2000), st.integers(0, 3000))
def test_every_dropped_piece_comes_back_once_with_its_count(tmp_path_factory, partitions, limit, bucket_bytes, spill_to):
    spill = SpillDir(tmp_path_factory.mktemp("spill"))
    try:
        dropped = DroppedPieces(limit, spill, bucket_bytes=bucket_bytes)
        expected: Counter = Counter()
        for part in partitions:
            merged: Counter = Counter()
            for piece, count in part:
                merged[piece] += count
            expected.update(merged)
            dropped.add(_run(list(merged), list(merged.values())), len(partitions))
        dropped.spill_to(spill_to)
        assert dropped.memory <= min(limit, spill_to)
        batches = list(dropped.batches(max_bytes=256))
        assert _contents(batches) == expected
        assert sum(b.size for b in batches) == sum(1 for part in partitions for _ in {p for p, _ in part})
    finally:
        spill.close()


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_bucket_of_one_leading_key_is_sorted_in_bounded_groups(tmp_path, monkeypatch, on_disk):
    rng = random.Random(7)
    bucket_bytes = 4096
    pieces = [b"#define " + bytes(rng.randrange(65, 91) for _ in range(rng.randrange(1, 24))) for _ in range(3000)]
    pieces = list(dict.fromkeys(pieces))
    groups: list[int] = []
    original = dropped_module._sorted_batches

    def recording(group, max_bytes):
        groups.append(sum(r.nbytes for r in group))
        return original(group, max_bytes)

    monkeypatch.setattr(dropped_module, "_sorted_batches", recording)
    spill = SpillDir(tmp_path)
    try:
        dropped = DroppedPieces(1 << 30, spill, bucket_bytes=bucket_bytes)
        for k in range(4):
            part = pieces[k::4]
            dropped.add(_run(part, [1] * len(part)), 4)
        total = sum(sum(r.nbytes for r in bucket) for bucket in dropped.buckets)
        if on_disk:
            dropped.spill_to(0)
        batches = list(dropped.batches(max_bytes=1024))
    finally:
        spill.close()
    assert _contents(batches) == Counter(pieces)
    assert len(groups) > 1 and total > 4 * bucket_bytes
    # a group closes at twice the bucket size, plus one slice of about half of it (sliced by the
    # part's average piece size, hence the margin)
    assert max(groups) <= 1.1 * 2.5 * bucket_bytes
    for batch in batches:  # each batch is in sorted order: what makes re-segmentation share work
        keys = [batch.piece(i)[:24] for i in range(batch.size)]
        assert keys == sorted(keys)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=300), st.lists(st.integers(0, 40), max_size=8))
def test_bucket_order_is_a_stable_sort_by_bucket(keys, cuts):
    from bytepiece.kernels.runs import bucket_order, numpy_bucket_order

    keys_array = np.array(keys, dtype=np.uint64)
    bounds = np.unique(np.array(cuts, dtype=np.uint64))
    which = np.searchsorted(bounds, keys_array, side="right")
    expected = sorted(range(len(keys)), key=lambda i: which[i])  # Python's sort is stable
    for order, edges in (bucket_order(keys_array, bounds), numpy_bucket_order(keys_array, bounds)):
        assert order.dtype == edges.dtype == np.int64
        assert order.tolist() == expected
        for b in range(len(bounds) + 1):
            assert (which[order[edges[b]:edges[b + 1]]] == b).all()
        assert edges[0] == 0 and edges[-1] == len(keys) and len(edges) == len(bounds) + 2
