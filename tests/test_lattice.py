"""n-best, score, sample-with-scores and entropy against brute-force enumeration
(``reference.all_segmentations``) on short strings, including several chunks."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from bytepiece import InputError, Tokenizer
from reference import all_segmentations, entropy, exact_text_distribution, piece_scores

ALPHABET = b"ab\n\xe4"
extra_pieces = st.dictionaries(
    st.binary(min_size=2, max_size=4).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)),
    st.integers(1, 60),
    max_size=12,
)
texts = st.binary(max_size=9).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))

COUNTS = {bytes([b]): 1 + (b * 7919) % 13 for b in range(256)}
COUNTS.update({b"ab": 30, b"bc": 25, b"abc": 12, b"cd": 20, b"bcd": 7, b"abcd": 9, b"aa": 11, b"aaa": 4,
               b"\xe4\xb8\xad": 15, b"\xe4\xb8": 3, b"\xe4\xb8\xad\xe6\x96\x87": 8, b"\xe6\x96\x87": 6, b"\n\n": 5})


def _vocab(extra: dict[bytes, int]) -> dict[bytes, int]:
    counts = {bytes([b]): 1 + b % 5 for b in range(256)}
    counts.update(extra)
    return counts


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_counts(COUNTS, normalization="none")


@given(extra_pieces, texts, st.integers(1, 12))
def test_nbest_is_the_exact_k_best(extra, text, n):
    counts = _vocab(extra)
    tok = Tokenizer.from_counts(counts, normalization="none")
    scores = piece_scores(counts)
    expected = sorted((total for _, total in all_segmentations(scores, text)), reverse=True)
    got = tok.nbest(text, n)
    assert len(got) == min(n, len(expected))
    assert [s for _, s in got] == pytest.approx(expected[: len(got)], rel=1e-12, abs=1e-12)
    assert got[0][0] == tok.encode(text)
    assert len({tuple(ids) for ids, _ in got}) == len(got)
    for ids, total in got:
        assert tok.decode_bytes(ids) == text
        assert tok.score(text, ids) == total  # same additions, so exactly equal
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


@given(extra_pieces, texts)
def test_score_matches_enumeration(extra, text):
    counts = _vocab(extra)
    tok = Tokenizer.from_counts(counts, normalization="none")
    table = dict(zip(tok.pieces(), range(3, tok.vocab_size)))
    for seg, total in all_segmentations(piece_scores(counts), text)[:20]:
        assert tok.score(text, [table[p] for p in seg]) == pytest.approx(total, rel=1e-12, abs=1e-12)


@given(extra_pieces, texts, st.sampled_from([0.0, 0.3, 1.0, 4.0]))
def test_entropy_matches_enumeration(extra, text, alpha):
    counts = _vocab(extra)
    tok = Tokenizer.from_counts(counts, normalization="none")
    assert tok.entropy(text, alpha=alpha) == pytest.approx(entropy(piece_scores(counts), text, alpha), rel=1e-9, abs=1e-9)


def test_nbest_returns_all_segmentations_when_fewer_exist(tok):
    text = b"abc"
    everything = all_segmentations(piece_scores(COUNTS), text)
    got = tok.nbest(text, 1000)
    assert len(got) == len(everything)
    assert {tuple(tok.id_to_piece(i) for i in ids) for ids, _ in got} == {seg for seg, _ in everything}


def test_nbest_over_several_chunks_combines_them(tok):
    text = b"abab\n\naab\nab"
    everything = all_segmentations(piece_scores(COUNTS), text)
    got = tok.nbest(text, 50)
    expected = sorted((t for _, t in everything), reverse=True)[:50]
    assert [s for _, s in got] == pytest.approx(expected, rel=1e-12)
    assert got[0][0] == tok.encode(text)


def test_nbest_first_is_encode_on_real_text():
    tok = Tokenizer("data/default.model")
    text = "Byte-level tokenizers split text into pieces.\n中文分词也可以。\n\n  def f(x):\n"
    best = tok.nbest(text, 5)
    assert best[0][0] == tok.encode(text)
    assert best[0][1] == tok.score(text, best[0][0])
    assert all(tok.decode(ids) == text for ids, _ in best)


def test_score_rejects_wrong_ids(tok):
    ids = tok.encode(b"abcd")
    with pytest.raises(InputError, match="spell"):
        tok.score(b"abce", ids)
    with pytest.raises(InputError, match="piece id"):
        tok.score(b"abcd", [1, *ids])
    crossing = Tokenizer.from_counts({**_vocab({}), b"a\nb": 5}, normalization="none")
    with pytest.raises(InputError, match="end of a line"):
        crossing.score(b"a\nb", [crossing.piece_to_id(b"a\nb")])


def test_empty_text(tok):
    assert tok.nbest("", 3) == [([], 0.0)]
    assert tok.entropy("") == 0.0
    assert tok.sample("", 2, seed=1) == [([], 0.0), ([], 0.0)]
    assert tok.score("", []) == 0.0


def test_invalid_arguments(tok):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="n must"):
            tok.nbest("ab", bad)
    for bad in (-0.1, float("inf"), float("nan"), "1"):
        with pytest.raises(InputError, match="alpha"):
            tok.entropy("ab", alpha=bad)
        with pytest.raises(InputError, match="alpha"):
            tok.sample("ab", 1, alpha=bad)


N_SAMPLES = 20_000


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("text", [b"abcd", b"aaaa\nab", "中文a".encode()], ids=["abcd", "two-chunks", "zh"])
def test_sample_matches_exact_distribution(tok, text, alpha):
    expected = exact_text_distribution(piece_scores(COUNTS), text, alpha)
    draws = tok.sample(text, N_SAMPLES, alpha=alpha, seed=11)
    samples = [tuple(tok.id_to_piece(i) for i in ids) for ids, _ in draws]
    observed = Counter(samples)
    assert set(observed) <= set(expected)
    keys = [k for k in expected if expected[k] * N_SAMPLES >= 5]
    rest = [k for k in expected if k not in keys]
    obs = [observed[k] for k in keys] + ([sum(observed[k] for k in rest)] if rest else [])
    exp = [expected[k] * N_SAMPLES for k in keys] + ([sum(expected[k] for k in rest) * N_SAMPLES] if rest else [])
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_sample_scores_and_reproducibility(tok):
    text = b"abcab\naaab"
    a = tok.sample(text, 50, alpha=0.2, seed=3)
    b = tok.sample(text, 50, alpha=0.2, seed=3)
    assert a == b
    assert a != tok.sample(text, 50, alpha=0.2, seed=4)
    for ids, total in a:
        assert tok.decode_bytes(ids) == text
        assert total == tok.score(text, ids)
    assert tok.sample(text, 3, seed=np.random.default_rng(5)) == tok.sample(text, 3, seed=np.random.default_rng(5))


def test_entropy_is_log_domain_safe():
    tok = Tokenizer("data/default.model")
    long_text = "the quick brown fox jumps over the lazy dog. " * 3000
    h = tok.entropy(long_text)
    assert math.isfinite(h) and h > 0
    # entropies of independent chunks add up
    assert tok.entropy(long_text + "\n" + long_text) == pytest.approx(2 * h, rel=1e-9)
    # a very peaked distribution: nearly all mass on the Viterbi path, no overflow
    assert 0.0 <= tok.entropy(long_text, alpha=1e4) < 1e-6
    # alpha = 0: the log of the number of segmentations of one chunk
    small = Tokenizer.from_counts(COUNTS, normalization="none")
    assert small.entropy(b"aaaa", alpha=0.0) == pytest.approx(math.log(len(all_segmentations(piece_scores(COUNTS), b"aaaa"))))


def test_sample_long_text_is_valid():
    tok = Tokenizer("data/default.model")
    text = "中文字符和 English words, mixed: 12345.\n" * 500
    for ids, total in tok.sample(text, 3, alpha=0.1, seed=9):
        assert tok.decode(ids) == text
        assert total == tok.score(text, ids)
