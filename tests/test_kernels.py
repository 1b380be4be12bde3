"""The trie and Viterbi kernels against the pure-Python reference on random vocabularies."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.kernels.trie import build_trie
from reference import piece_scores, viterbi

ALPHABET = b"ab\n\xe4"
multi_byte_pieces = st.dictionaries(
    st.binary(min_size=2, max_size=6).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)),
    st.integers(1, 50),
    max_size=25,
)
texts = st.binary(max_size=60).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))


def _vocab(extra: dict[bytes, int]) -> dict[bytes, int]:
    counts = {bytes([b]): 1 + b % 5 for b in range(256)}
    counts.update(extra)
    return counts


@given(multi_byte_pieces, texts)
def test_viterbi_matches_reference(extra, text):
    counts = _vocab(extra)
    tokenizer = Tokenizer.from_counts(counts, normalization="none")
    assert tokenizer.tokenize(text) == viterbi(piece_scores(counts), text)


@given(multi_byte_pieces, st.lists(texts, max_size=8))
def test_batch_equals_single(extra, batch):
    tokenizer = Tokenizer.from_counts(_vocab(extra), normalization="none")
    expected = [tokenizer.encode(t) for t in batch]
    assert tokenizer.encode_batch(batch, num_threads=1) == expected
    assert tokenizer.encode_batch(batch, num_threads=3) == expected
    flat, offsets = tokenizer.encode_batch(batch, return_flat=True, add_bos=True, add_eos=True)
    assert flat.dtype == np.int32 and offsets[0] == 0 and offsets[-1] == len(flat)
    assert [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(batch))] == [[1, *e, 2] for e in expected]


@given(st.sets(st.binary(min_size=1, max_size=8), min_size=1, max_size=200), st.binary(min_size=1, max_size=8))
def test_trie_finds_exactly_the_pieces(pieces, probe):
    pieces = sorted(pieces)
    trie = build_trie(pieces, np.arange(len(pieces), dtype=np.int32))
    bc = trie.base_check

    def lookup(key: bytes) -> int:
        node = 0
        for c in key:
            nxt = bc[2 * node] + c
            if bc[2 * nxt + 1] != node:
                return -1
            node = nxt
        return int(trie.piece[node])

    for i, p in enumerate(pieces):
        assert lookup(p) == i
    assert lookup(probe) == (pieces.index(probe) if probe in pieces else -1)
    assert trie.max_depth == max(map(len, pieces))


def _lookup(trie, key: bytes) -> int:
    bc = trie.base_check
    node = 0
    for c in key:
        nxt = bc[2 * node] + c
        if bc[2 * nxt + 1] != node:
            return -1
        node = nxt
    return int(trie.piece[node])


@pytest.mark.slow
def test_trie_of_a_million_random_byte_pieces_builds_in_linear_time():
    """Issue 18, item 12: random bytes give every node of the first levels many children with
    unrelated labels; first-fit placement scanned every hole left before it and took 117 s for
    1M pieces (0.08 s for 100k). Now a few seconds, and the trie is still exact and dense."""
    rng = np.random.default_rng(0)
    pieces: set[bytes] = {bytes([b]) for b in range(256)}
    lengths = rng.integers(4, 11, size=1_000_000).tolist()
    blob = rng.integers(0, 256, size=sum(lengths), dtype=np.uint8).tobytes()
    start = 0
    for length in lengths:
        pieces.add(blob[start : start + length])
        start += length
    ordered = sorted(pieces)
    build_trie(ordered[:1000])  # compiled (or loaded from numba's cache) before the clock starts
    began = time.perf_counter()
    trie = build_trie(ordered, np.arange(len(ordered), dtype=np.int32))
    elapsed = time.perf_counter() - began
    assert elapsed < 30, f"{elapsed:.1f} s to build a trie of {len(ordered):,} pieces"
    for i in rng.integers(0, len(ordered), size=3000).tolist():
        assert _lookup(trie, ordered[i]) == i
    assert _lookup(trie, b"\xff" * 11) == -1
    used = int((trie.base_check[1::2] >= 0).sum())
    assert len(trie.piece) <= used + used // 16 + 1024, "placement left the array sparse"


def test_exact_tie_keeps_the_longer_last_piece():
    """'a'+'ab' and 'aa'+'b' score exactly the same (x + y == y + x in floating point); the
    original keeps the first candidate it sees at an end position, the longer one."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"a": 2, b"b": 2, b"aa": 10, b"ab": 10})
    tokenizer = Tokenizer.from_counts(counts)
    s = dict(zip(tokenizer.pieces(), tokenizer.scores[3:]))
    assert s[b"a"] + s[b"ab"] == s[b"aa"] + s[b"b"]
    assert tokenizer.tokenize("aab") == [b"a", b"ab"] == viterbi(piece_scores(counts), b"aab")
    # the kernels, with the tie at either position of a pair whose walks run in step, and in
    # documents as well as one text
    for prefix in (b"", b"x", b"xx", b"xxx"):
        text = prefix + b"aab" + b"z" * len(prefix)
        expected = [tokenizer.piece_to_id(p) for p in viterbi(piece_scores(counts), text)]
        assert tokenizer.segmenter.segment_array(text).tolist() == expected
        flat, _ = tokenizer.encode_batch([text, text], return_flat=True)
        assert flat.tolist() == expected * 2


@settings(deadline=None)
@given(st.dictionaries(st.binary(min_size=2, max_size=6).map(lambda b: bytes(b"ab"[x % 2] for x in b)),
                       st.sampled_from([1, 1, 2]), max_size=25),
       st.lists(st.binary(max_size=120).map(lambda b: bytes(b"ab"[x % 2] for x in b)), min_size=1, max_size=6))
def test_kernel_viterbi_on_ties_matches_reference(extra, batch):
    """Equal counts make every segmentation into as many pieces of one score tie exactly: the
    kernels (forced, not the plain-Python start) must break each tie as the reference does."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update(extra)
    tokenizer = Tokenizer.from_counts(counts, normalization="none")
    scores = piece_scores(counts)
    for text in batch:
        want = [tokenizer.piece_to_id(p) for p in viterbi(scores, text)]
        assert tokenizer.segmenter.segment_array(text).tolist() == want
    flat, offsets = tokenizer.encode_batch(batch, return_flat=True, num_threads=1)
    got = [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(batch))]
    assert got == [[tokenizer.piece_to_id(p) for p in viterbi(scores, t)] for t in batch]


@settings(deadline=None)
@given(multi_byte_pieces, st.lists(texts, max_size=8), st.sampled_from([-1.0, 0.3, 1e6]), st.integers(0, 2**32),
       st.booleans())
def test_whole_documents_path_equals_the_segment_path(extra, batch, alpha, seed, marks):
    """A batch of one-segment documents takes a shorter loop in the kernel; a special-token
    array of only text segments (-1) sends the same batch through the general loop."""
    core = Tokenizer.from_counts(_vocab(extra), normalization="none")._core
    buf = np.frombuffer(b"".join(batch), np.uint8)
    bounds = np.zeros(len(batch) + 1, np.int64)
    bounds[1:] = np.cumsum([len(t) for t in batch])
    text_only = np.full(len(batch), -1, np.int32)
    bos, eos = (1, 2) if marks else (-1, -1)
    fast = core.segment_documents(buf, bounds, alpha=alpha, seed=np.uint64(seed), doc_base=5, bos=bos, eos=eos)
    general = core.segment_documents(buf, bounds, alpha=alpha, seed=np.uint64(seed), doc_base=5, bos=bos, eos=eos,
                                     special=text_only)
    assert np.array_equal(fast[0], general[0]) and np.array_equal(fast[1], general[1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 7, 2**63, 2**64 - 1]), max_size=700))
def test_stable_argsort_equals_numpys_stable_sort(keys):
    """Many ties and the extremes of uint64, over lengths that take the insertion runs and
    several rounds of merges (pieces' keys in ``refine_ties``)."""
    from bytepiece.kernels.sorting import stable_argsort

    array = np.array(keys, dtype=np.uint64)
    assert stable_argsort(array).tolist() == np.argsort(array, kind="stable").tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-np.inf, -1e300, -2.5, -0.0, 0.0, 1.0, 3.25, np.inf]), max_size=300),
       st.sampled_from(["float64", "int32"]))
def test_stable_argsort_on_scores_and_ranks(keys, dtype):
    """The key types of the continuation kernels: negated scores with -inf and signed zeros (which
    compare equal, so ties keep their order), and int32 ranks."""
    from bytepiece.kernels.sorting import stable_argsort

    array = np.array(keys, dtype=np.float64)
    if dtype == "int32":
        array = array.clip(-7, 7).astype(np.int32)
    assert stable_argsort(array).tolist() == np.argsort(array, kind="stable").tolist()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=30).map(lambda b: bytes(x % 3 for x in b)), max_size=120))
def test_lexicographic_order_sorts_by_bytes_stably(pieces):
    """Few distinct bytes: long ties, prefixes of each other, duplicates and empty pieces; both
    the kernels' way and the one for few pieces."""
    from bytepiece.kernels.trie import kernel_lexicographic_order, lexicographic_order

    arena = np.frombuffer(bytearray(b"".join(pieces)), dtype=np.uint8)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    expected = sorted(range(len(pieces)), key=lambda i: pieces[i])  # Python's sort is stable
    assert kernel_lexicographic_order(arena, offsets).tolist() == expected
    small = lexicographic_order(arena, offsets)
    assert small.dtype == np.int64 and small.tolist() == expected
