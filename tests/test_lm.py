"""The Kneser-Ney n-gram LM: hand-computed values, a dict-based reference, normalisation."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece.errors import InputError
from bytepiece.continuation.lm import NGramLM, estimate_discounts


# -- a slow, obviously-correct reference --------------------------------------------------------
def _ref_discounts(counts):
    n = Counter(c for c in counts if 0 < c <= 4)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    default = (0.5, 1.0, 1.5)
    if n1 == 0 or n2 == 0:
        return default
    y = n1 / (n1 + 2 * n2)
    out = []
    for r, (a, b) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        out.append(default[r - 1] if a == 0 else min(max(r - (r + 1) * y * b / a, 0.01), r))
    return tuple(out)


class RefKN:
    def __init__(self, docs, vocab_size, order, min_id=0, discounts=None):
        self.V, self.order, self.min_id = vocab_size, order, min_id
        raw = [None] + [Counter() for _ in range(order)]
        for d in docs:
            for i in range(len(d)):
                for k in range(1, order + 1):
                    if i - k + 1 >= 0:
                        raw[k][tuple(d[i - k + 1 : i + 1])] += 1
        self.kn = [None] * (order + 1)
        self.kn[order] = raw[order]
        for k in range(1, order):
            left = defaultdict(set)
            for g in raw[k + 1]:
                left[g[1:]].add(g[0])
            self.kn[k] = Counter({g: len(s) for g, s in left.items()})
        self.disc = [None] + [
            tuple(discounts) if discounts is not None else _ref_discounts(list(self.kn[k].values()))
            for k in range(1, order + 1)
        ]

    def prob(self, context, w):
        context = tuple(context[max(0, len(context) - (self.order - 1)) :]) if self.order > 1 else ()
        return self._p(context, w)

    def _p(self, h, w):
        k = len(h) + 1
        if k == 1:
            lower = 0.0 if w < self.min_id else 1.0 / (self.V - self.min_id)
        else:
            lower = self._p(h[1:], w)
        children = {g[-1]: c for g, c in self.kn[k].items() if g[:-1] == h and c > 0}
        total = sum(children.values())
        if total == 0:
            return lower
        d = self.disc[k]
        gamma = sum(d[min(c, 3) - 1] for c in children.values()) / total
        c = children.get(w, 0)
        return gamma * lower + (max(c - d[min(c, 3) - 1], 0.0) / total if c else 0.0)


# -- hand-computed example ----------------------------------------------------------------------
def test_hand_computed_bigram():
    # a b a b c a, ids a=0 b=1 c=2, id 3 never seen; fixed discounts D1=0.5, D2=1, D3+=1.5.
    # unigram continuation counts: a 2 ({b, c} before it), b 1, c 1, d 0; total 4
    # gamma(empty) = (0.5*3... ) = (2 * 0.5 + 1 * 1.0) / 4 = 0.5, uniform 1/4
    # p1 = [(2-1)/4 + 0.125, 0.5/4 + 0.125, 0.5/4 + 0.125, 0.125] = [0.375, 0.25, 0.25, 0.125]
    lm = NGramLM.train([0, 1, 0, 1, 2, 0], 4, order=2, discounts=(0.5, 1.0, 1.5))
    np.testing.assert_array_equal(lm.next_probs([]), [0.375, 0.25, 0.25, 0.125])
    # after b: children a:1 c:1, total 2, gamma = (0.5 + 0.5) / 2 = 0.5
    np.testing.assert_array_equal(lm.next_probs([1]), [0.4375, 0.125, 0.375, 0.0625])
    # after a: child b:2, total 2, gamma = 1.0 / 2
    np.testing.assert_array_equal(lm.next_probs([0]), [0.1875, 0.625, 0.125, 0.0625])
    # after c: child a:1, total 1, gamma = 0.5
    assert lm.prob([2], 0) == 0.6875
    # an unseen context backs off to the unigram level; only the last token counts at order 2
    np.testing.assert_array_equal(lm.next_probs([3]), lm.next_probs([]))
    np.testing.assert_array_equal(lm.next_probs([3, 3, 0]), lm.next_probs([0]))
    expected = math.log(0.375 * 0.625 * 0.4375 * 0.625 * 0.375 * 0.6875)
    assert lm.token_logprobs([0, 1, 0, 1, 2, 0]).sum() == pytest.approx(expected, rel=1e-15)
    assert lm.bits([0, 1, 0, 1, 2, 0]) == pytest.approx(-expected / math.log(2), rel=1e-15)
    # the batch forms (the generic continuation's) give the same rows
    contexts = [[], [1], [0], [3, 3, 0]]
    np.testing.assert_array_equal(lm.next_token_probs_batch(contexts), [lm.next_probs(c) for c in contexts])
    np.testing.assert_allclose(np.exp(lm.next_token_logprobs_batch(contexts)), lm.next_token_probs_batch(contexts),
                               rtol=1e-15)


def test_hand_computed_trigram():
    # The same text at order 3, fixed discounts (0.5, 1, 1.5). Trigrams (raw counts): 010, 101, 012, 120,
    # each 1. Bigram KN counts are continuation counts (distinct tokens to the left in a trigram):
    # 10:1 (from 010), 01:1 (from 101; the leading 01 has no left token), 12:1, 20:1.
    # p(. | 1)   = [0.4375, 0.125, 0.375, 0.0625]     (children 10, 12: total 2, gamma 0.5)
    # p(. | 0)   = [0.1875, 0.625, 0.125, 0.0625]     (child 01 with count 1: 0.5 + 0.5 * p1)
    # p(. | 0 1) = max(c - 0.5, 0) / 2 + 0.5 * p(. | 1), children 010, 012
    #            = [0.25 + 0.21875, 0.0625, 0.25 + 0.1875, 0.03125]
    # p(. | 1 0) = [0.5 * 0.1875, 0.5 + 0.5 * 0.625, 0.5 * 0.125, 0.5 * 0.0625]   (child 101)
    lm = NGramLM.train([0, 1, 0, 1, 2, 0], 4, order=3, discounts=(0.5, 1.0, 1.5))
    np.testing.assert_allclose(lm.next_probs([0, 1]), [0.46875, 0.0625, 0.4375, 0.03125], rtol=1e-15)
    np.testing.assert_allclose(lm.next_probs([1, 0]), [0.09375, 0.8125, 0.0625, 0.03125], rtol=1e-15)
    np.testing.assert_allclose(lm.next_probs([1]), [0.4375, 0.125, 0.375, 0.0625], rtol=1e-15)
    # "2 0" never continues at order 3: the bigram distribution after "0" is used unchanged
    np.testing.assert_array_equal(lm.next_probs([2, 0]), lm.next_probs([0]))
    np.testing.assert_allclose(lm.next_probs([0]), [0.1875, 0.625, 0.125, 0.0625], rtol=1e-15)
    # sequence: p(0) p(1|0) p(0|0 1) p(1|1 0) p(2|0 1) p(0|1 2), the last from context 1 2 -> child 120
    # p(0 | 1 2) = (1 - 0.5) / 1 + 0.5 * p(0 | 2); p(. | 2) = 0.5 [w=0] + 0.5 p1 -> p(0|2) = 0.6875
    p_last = 0.5 + 0.5 * 0.6875
    expected = math.log(0.375 * 0.625 * 0.46875 * 0.8125 * 0.4375 * p_last)
    assert lm.token_logprobs([0, 1, 0, 1, 2, 0]).sum() == pytest.approx(expected, rel=1e-14)


def test_estimated_discounts():
    # bigram counts 2, 1, 1, 1: n1=3 n2=1 n3=0 -> Y = 3/5, D1 = 1 - 2*0.6/3 = 0.6, D2 = 2 (n3 = 0),
    # D3+ has no data (n3 = 0) -> default 1.5
    assert estimate_discounts(np.array([2, 1, 1, 1])) == pytest.approx((0.6, 2.0, 1.5))
    lm = NGramLM.train([0, 1, 0, 1, 2, 0], 4, order=2)
    assert lm.discounts[1] == pytest.approx((0.6, 2.0, 1.5))
    # n1 = 10, n2 = 5, n3 = 2, n4 = 1: Y = 0.5; D1 = 0.5, D2 = 2 - 1.5*2/5 = 1.4, D3 = 3 - 2*1/2 = 2
    counts = np.array([1] * 10 + [2] * 5 + [3] * 2 + [4])
    assert estimate_discounts(counts) == pytest.approx((0.5, 1.4, 2.0))


# -- against the reference ----------------------------------------------------------------------
docs_strategy = st.lists(st.lists(st.integers(2, 9), min_size=0, max_size=40), min_size=1, max_size=4)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_matches_reference_and_sums_to_one(order):
    rng = np.random.default_rng(order)
    vocab = 12
    # Zipf-ish tokens so that counts of 1, 2, 3+ all occur.
    docs = [list(rng.choice(np.arange(2, vocab), size=n, p=_zipf(vocab - 2))) for n in (300, 50, 0, 7)]
    flat = [t for d in docs for t in d]
    offsets = np.cumsum([0] + [len(d) for d in docs])
    lm = NGramLM.train(flat, vocab, order=order, offsets=offsets, min_id=2)
    ref = RefKN(docs, vocab, order, min_id=2)
    assert lm.discounts == pytest.approx(np.array(ref.disc[1:]))
    for _ in range(40):
        context = list(rng.integers(2, vocab, size=int(rng.integers(0, 6))))
        if rng.random() < 0.5 and len(flat) > 6:  # a context that occurs in training
            i = int(rng.integers(5, len(flat)))
            context = flat[i - 5 : i]
        probs = lm.next_probs(context)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(probs[:2] == 0) and np.all(probs[2:] > 0)
        expected = [ref.prob(context, w) for w in range(vocab)]
        np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=0)
        # pointwise queries give bit-identical values
        np.testing.assert_array_equal(lm.probs_of(context, np.arange(vocab)), probs)
        np.testing.assert_array_equal(np.exp(lm.next_logprobs(context)[2:]), np.exp(np.log(probs[2:])))
    # sequence scoring uses the document's own context only
    logp = lm.token_logprobs(flat, offsets)
    for d, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        for i in range(a, b, 7):
            assert logp[i] == pytest.approx(math.log(ref.prob(flat[max(a, i - order + 1) : i], flat[i])), rel=1e-12)


def _zipf(n):
    p = 1.0 / np.arange(1, n + 1)
    return p / p.sum()


@given(docs=docs_strategy, order=st.integers(1, 5))
def test_random_corpora_normalised(docs, order):
    flat = [t for d in docs for t in d]
    offsets = np.cumsum([0] + [len(d) for d in docs])
    lm = NGramLM.train(np.array(flat, dtype=np.int64), 10, order=order, offsets=offsets, min_id=2)
    ref = RefKN(docs, 10, order, min_id=2)
    for context in ([], flat[-3:], flat[:2], [9, 9, 9, 9]):
        probs = lm.next_probs(context)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(probs, [ref.prob(context, w) for w in range(10)], rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_large_vocabulary_sums_to_one(order):
    rng = np.random.default_rng(10 + order)
    vocab = 50_000
    ids = (rng.zipf(1.3, size=200_000) % (vocab - 3)) + 3
    lm = NGramLM.train(ids, vocab, order=order, min_id=3)
    for _ in range(20):
        i = int(rng.integers(order, len(ids)))
        context = ids[i - order : i] if rng.random() < 0.7 else rng.integers(3, vocab, size=order)
        p = lm.next_probs(context)
        assert math.fsum(p) == pytest.approx(1.0, abs=1e-10)
        assert p[3:].min() > 0
    held = (rng.zipf(1.3, size=5000) % (vocab - 3)) + 3
    assert np.isfinite(lm.bits(held))


def test_validation():
    with pytest.raises(InputError, match="outside"):
        NGramLM.train([0, 1, 5], 4)
    with pytest.raises(InputError, match="outside"):
        NGramLM.train([0, 1, 2], 4, min_id=1)
    with pytest.raises(InputError, match="order"):
        NGramLM.train([0, 1], 4, order=0)
    with pytest.raises(InputError, match="offsets"):
        NGramLM.train([0, 1], 4, offsets=[0, 3])
    with pytest.raises(InputError, match="discounts"):
        NGramLM.train([0, 1], 4, discounts=(0.5, 1.0, 4.0))
    lm = NGramLM.train([0, 1, 2], 4)
    with pytest.raises(InputError, match="outside"):
        lm.next_probs([7])
    # an empty corpus is the uniform distribution
    empty = NGramLM.train([], 5, order=3, min_id=1)
    np.testing.assert_array_equal(empty.next_probs([1, 2]), [0, 0.25, 0.25, 0.25, 0.25])
