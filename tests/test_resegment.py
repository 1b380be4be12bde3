"""Pruning's re-segmentation kernel (packed cells of a reversed trie, pulling, sharing prefixes
between consecutive pieces) and its plain-Python stand-in for small candidate sets, against the
plain forward Viterbi of the same module."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from bytepiece.kernels.segment import best_segmentation, packed_cells, resegment_sorted, set_cell_scores
from bytepiece.kernels.trie import build_trie_arrays
from bytepiece.training.pruning import _PythonResegmenter
from bytepiece.training.spill import PieceRun

ALPHABET = b"ab\x00\xff"
word = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=9).map(bytes)


def _arena(pieces):
    offsets = np.zeros(len(pieces) + 1, np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(bytearray(b"".join(pieces)), np.uint8), offsets


@settings(max_examples=60, deadline=None)
@given(st.sets(word.filter(lambda w: len(w) > 1), max_size=25), st.lists(word, min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_resegment_sorted_matches_the_forward_viterbi(multi, texts, rnd):
    pieces = sorted({bytes([b]) for b in range(256)} | multi)
    # few distinct scores, so that ties (kept by the longest last piece) are common; some left out
    logp = np.array([rnd.choice([-1.0, -2.0, -3.0]) if len(p) == 1 or rnd.random() > 0.2 else -np.inf
                     for p in pieces])
    arena, offsets = _arena(pieces)
    ids = np.arange(len(pieces), dtype=np.int32)
    forward = build_trie_arrays(arena, offsets, ids)
    reverse = build_trie_arrays(arena, offsets, ids, reverse=True)

    expected = np.zeros(len(pieces), np.int64)
    texts = sorted(texts)  # the order that shares prefixes, as pruning feeds the kernel
    weights = np.array([rnd.randint(1, 5) for _ in texts], np.int64)
    cell_logp = forward.cell_values(logp, -np.inf)
    for text, w in zip(texts, weights):
        buf = np.frombuffer(text, np.uint8)
        n = len(buf)
        best, back, tok = np.empty(n + 1), np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64)
        best_segmentation(forward.base_check, forward.piece, cell_logp, buf, 0, n, False, best, back, tok)
        e = n
        while e > 0:
            expected[tok[e]] += w
            e = back[e]

    cells = packed_cells(reverse.base_check)
    terminal = np.flatnonzero(reverse.piece >= 0)
    set_cell_scores(cells, terminal, logp[reverse.piece[terminal]])
    text_arena, text_offsets = _arena(texts)
    got = np.zeros(len(pieces), np.int64)
    resegment_sorted(cells, cells.view(np.float64), reverse.pair_cells(), reverse.piece, text_arena, text_offsets, weights, got)
    assert got.tolist() == expected.tolist()

    # the Python stand-in, fed in two batches (its shared-prefix state starts afresh in each)
    cut = rnd.randint(0, len(texts))
    batches = []
    for lo, hi in ((0, cut), (cut, len(texts))):
        part_arena, part_offsets = _arena(texts[lo:hi])
        batches.append(PieceRun(np.zeros(hi - lo, np.uint64), weights[lo:hi], part_offsets, part_arena))
    advanced = []
    python = _PythonResegmenter(pieces).counts(batches, logp, advanced.append)
    assert python.dtype == np.int64 and python.tolist() == expected.tolist()
    assert sum(advanced) == len(texts)

