"""Sampling draws each segmentation with probability proportional to prod p(piece) ** alpha.

Checked against the exhaustively enumerated distribution with a chi-square goodness-of-fit test.
Seeds are fixed, so each test is deterministic; the significance level 1e-3 is the false-alarm
rate a correct sampler would have over random seeds, and a biased sampler (e.g. the older
"compare with the current best path" variant) fails these by hundreds of standard deviations.
"""

from __future__ import annotations

import math
import sys
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from bytepiece import Tokenizer
from reference import exact_distribution, piece_scores, segmentations, viterbi

N_SAMPLES = 20_000
SIGNIFICANCE = 1e-3

COUNTS = {bytes([b]): 1 + (b * 7919) % 13 for b in range(256)}
COUNTS.update({b"ab": 30, b"bc": 25, b"abc": 12, b"cd": 20, b"bcd": 7, b"abcd": 9, b"aa": 11, b"aaa": 4,
               b"\xe4\xb8\xad": 15, b"\xe4\xb8": 3, b"\xe4\xb8\xad\xe6\x96\x87": 8, b"\xe6\x96\x87": 6})
STRINGS = [b"abcd", b"aaaa", b"abcab", "中文a".encode()]
ALPHAS = [0.0, 0.1, 1.0]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_counts(COUNTS)


@pytest.fixture(scope="module")
def scores():
    return piece_scores(COUNTS)


def _chi_square(samples: list[tuple[bytes, ...]], expected: dict[tuple[bytes, ...], float]) -> float:
    observed = Counter(samples)
    assert set(observed) <= set(expected), "sampled a segmentation that is not valid"
    n = len(samples)
    # Pool rare segmentations so every bin has an expected count >= 5.
    keys = sorted(expected, key=expected.get, reverse=True)
    obs, exp, rest_obs, rest_exp = [], [], 0, 0.0
    for k in keys:
        if expected[k] * n >= 5:
            obs.append(observed[k])
            exp.append(expected[k] * n)
        else:
            rest_obs += observed[k]
            rest_exp += expected[k] * n
    if rest_exp > 0:
        obs.append(rest_obs)
        exp.append(rest_exp)
    if len(obs) < 2:
        return 1.0
    return stats.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("text", STRINGS, ids=lambda t: t.decode())
def test_batch_sampling_matches_exact_distribution(tokenizer, scores, text, alpha):
    expected = exact_distribution(scores, text, alpha)
    assert len(expected) > 2
    flat, offsets = tokenizer.encode_batch([text] * N_SAMPLES, alpha=alpha, seed=1234, return_flat=True)
    pieces = [tokenizer.id_to_piece(i) for i in flat.tolist()]
    bounds = offsets.tolist()
    samples = [tuple(pieces[bounds[i] : bounds[i + 1]]) for i in range(N_SAMPLES)]
    assert _chi_square(samples, expected) > SIGNIFICANCE


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_per_call_sampling_matches_exact_distribution(tokenizer, scores, alpha):
    text = b"abcab"
    expected = exact_distribution(scores, text, alpha)
    samples = [tuple(tokenizer.tokenize(text, alpha=alpha, seed=s)) for s in range(N_SAMPLES)]
    assert _chi_square(samples, expected) > SIGNIFICANCE


def test_log_domain_sampler_is_exact_for_large_alpha(scores):
    """alpha so large that p**alpha underflows: the log-sum-exp sampler takes over."""
    tokenizer = Tokenizer.from_counts(COUNTS)
    alpha = 60.0
    assert alpha * tokenizer.scores[3:].min() < -200  # the LOG path
    text = b"abcab"
    expected = exact_distribution(scores, text, alpha)
    flat, offsets = tokenizer.encode_batch([text] * N_SAMPLES, alpha=alpha, seed=7, return_flat=True)
    pieces = [tokenizer.id_to_piece(i) for i in flat.tolist()]
    bounds = offsets.tolist()
    samples = [tuple(pieces[bounds[i] : bounds[i + 1]]) for i in range(N_SAMPLES)]
    assert _chi_square(samples, expected) > SIGNIFICANCE


def test_sampling_rescales_long_texts_without_underflow(tokenizer):
    """A 200k-byte chunk: path weights span far more than the float64 range."""
    text = b"abcd" * 50_000
    for alpha in (0.0, 1.0):
        ids = tokenizer.encode(text, alpha=alpha, seed=3)
        assert tokenizer.decode_bytes(ids) == text


def test_negative_alpha_is_viterbi(tokenizer, scores):
    for text in STRINGS + [b"abcdabcd\n\naaab"]:
        assert tokenizer.tokenize(text, alpha=-1) == viterbi(scores, text)
        assert tokenizer.tokenize(text, alpha=-0.5, seed=1) == viterbi(scores, text)


def test_same_seed_same_samples_different_seed_differs(tokenizer):
    texts = ["abcab abcd aaaa 中文" * 3] * 50
    a = tokenizer.encode_batch(texts, alpha=0.5, seed=42)
    b = tokenizer.encode_batch(texts, alpha=0.5, seed=42)
    c = tokenizer.encode_batch(texts, alpha=0.5, seed=43)
    assert a == b
    assert a != c
    assert tokenizer.encode(texts[0], alpha=0.5, seed=9) == tokenizer.encode(texts[0], alpha=0.5, seed=9)
    assert len({tuple(tokenizer.encode(texts[0], alpha=0.5, seed=s)) for s in range(20)}) > 1


def test_seeded_batch_is_independent_of_thread_count(tokenizer):
    texts = [("abcab" * (i % 17 + 1)) + "中文" * (i % 3) for i in range(500)]
    one = tokenizer.encode_batch(texts, alpha=0.3, seed=5, num_threads=1)
    two = tokenizer.encode_batch(texts, alpha=0.3, seed=5, num_threads=2)
    four = tokenizer.encode_batch(texts, alpha=0.3, seed=5, num_threads=4)
    assert one == two == four


def test_seed_accepts_numpy_generator(tokenizer):
    a = tokenizer.encode("abcabcab", alpha=0.5, seed=np.random.default_rng(3))
    b = tokenizer.encode("abcabcab", alpha=0.5, seed=np.random.default_rng(3))
    assert a == b


def test_unseeded_sampling_varies(tokenizer):
    draws = {tuple(tokenizer.encode("abcab" * 4, alpha=0.0)) for _ in range(30)}
    assert len(draws) > 1


HUGE_ALPHAS = [1e6, 1e100, 1e303, 1e308, sys.float_info.max]


def _best_is_unique(scores, text: bytes) -> bool:
    totals = sorted((sum(scores[p] for p in seg) for seg in segmentations(scores, text)), reverse=True)
    return len(totals) == 1 or totals[0] > totals[1]


@pytest.mark.parametrize("alpha", HUGE_ALPHAS)
def test_huge_alpha_samples_the_viterbi_segmentation(tokenizer, scores, alpha):
    """alpha * log p overflows to -inf here: every id must still be a real piece (it used to
    be -1), and the sample is the Viterbi segmentation (the unique most probable one)."""
    for text in STRINGS + [b"bcdaab", b"cdaaab"]:
        assert _best_is_unique(scores, text)
        ids = tokenizer.encode(text, alpha=alpha, seed=1)
        assert min(ids) >= 3
        assert tokenizer.tokenize(text, alpha=alpha, seed=1) == viterbi(scores, text)
        flat, _ = tokenizer.encode_batch([text] * 3, alpha=alpha, seed=2, return_flat=True)
        assert flat.tolist() == tokenizer.encode(text) * 3


@pytest.mark.parametrize("alpha", [1e303, 1e308])
def test_huge_alpha_on_a_400kb_line(tokenizer, alpha):
    """Path weights summed along a long line overflowed even where single pieces did not."""
    text = "abcab abcd 中文 aab\t" * 20_000
    assert len(text.encode()) > 400_000
    assert tokenizer.encode(text, alpha=alpha, seed=4) == tokenizer.encode(text)
    assert tokenizer.encode_batch([text, "x"], alpha=alpha, seed=4) == [tokenizer.encode(text), tokenizer.encode("x")]


@pytest.mark.parametrize("alpha", [1e303, 1e308])
def test_huge_alpha_on_a_long_real_line(load_shared_tokenizer, shared, alpha):
    """Real text has exact ties ('**' + '***' against '***' + '**'), which sampling may break
    either way: the sample must reach the Viterbi score, not necessarily its tie choices."""
    tokenizer = load_shared_tokenizer("bytepiece_80k")
    text = (shared / "corpora" / "mixed.txt").read_bytes()[:400_000].replace(b"\n", b" ")
    text = text.decode("utf-8", "ignore")
    ids = tokenizer.encode(text, alpha=alpha, seed=9)
    assert min(ids) >= 3
    assert tokenizer.decode(ids) == text
    best = tokenizer.encode(text)
    assert math.isclose(tokenizer.scores[ids].sum(), tokenizer.scores[best].sum(), rel_tol=1e-12)


def test_huge_alpha_splits_exact_ties_evenly():
    """'a'+'ab' and 'aa'+'b' have exactly equal probability and beat every other
    segmentation of 'aab': the limit of large alpha draws each of the two half of the time."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"a": 2, b"b": 2, b"aa": 10, b"ab": 10})
    tokenizer = Tokenizer.from_counts(counts)
    n = 4000
    flat, offsets = tokenizer.encode_batch(["aab"] * n, alpha=1e300, seed=11, return_flat=True)
    pieces = [tokenizer.id_to_piece(i) for i in flat.tolist()]
    bounds = offsets.tolist()
    observed = Counter(tuple(pieces[bounds[i] : bounds[i + 1]]) for i in range(n))
    assert set(observed) == {(b"a", b"ab"), (b"aa", b"b")}
    assert stats.binomtest(observed[(b"a", b"ab")], n, 0.5).pvalue > SIGNIFICANCE
