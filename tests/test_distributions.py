"""The named byte-level distributions ("all", "stable", "canonical") against brute force written
from their definitions, and the short-context bug (a context shorter than the LM's window).

The references enumerate every token sequence that covers a prompt's bytes and reaches past them
(its last token crosses the end), ask the LM one probability at a time with the *whole* history
(the LM cuts it to its window itself), and keep the sequences each definition keeps:

* all: every sequence, from the prompt's first byte, with no context;
* stable: the prompt's stable prefix (``Tokenizer.encode_stable``) as context, every sequence
  over the rest;
* canonical: the tokens of the chunks before the last one as context, and only the sequences T
  with ``tokenizer.encode(head + bytes(T)) == encode(head) + T``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece.continuation import ByteLevelLM, NGramLM, complete
from bytepiece.errors import InputError
from reference import REFERENCES, memo
from reference import next_byte as brute

TRAIN = "abcd ab cd abc bcd abcd\n\nab 中文 中 cd ab abcd\n" * 20
ORDERS = (2, 3, 4, 5)


class Plain:
    """A Kneser-Ney model seen only through the token-LM interface (the generic path), with its
    window declared so that histories merge."""

    def __init__(self, lm):
        self._lm = lm
        self.vocab_size = lm.vocab_size
        self.context_size = lm.order - 1

    def next_token_logprobs(self, ctx):
        return self._lm.next_logprobs(ctx)

    def next_token_logprobs_batch(self, ctxs):
        return self._lm.next_token_logprobs_batch(ctxs)


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture(scope="module")
def pieces(tok):
    return {p: i + 3 for i, p in enumerate(tok.pieces())}


_lms: dict = {}


def lm_of(tok, order):
    if order not in _lms:
        lm = NGramLM.train(tok.encode(TRAIN, alpha=0.3, seed=1), tok.vocab_size, order=order, min_id=3)
        _lms[order] = lm, memo(lm.prob)
    return _lms[order]


# -- the short-context bug ----------------------------------------------------------------------------
@pytest.mark.parametrize("order", ORDERS)
def test_every_context_length_both_backends(tok, pieces, order):
    """Contexts of every length from 0 to order + 1 (taken from the training ids, so that the
    deep contexts are seen and cutting them changes the answer): the kernels and the generic
    recursion both give the brute force, which hands the LM the whole history."""
    lm, prob = lm_of(tok, order)
    train = tok.encode(TRAIN)
    backends = [ByteLevelLM(tok, lm), ByteLevelLM(tok, Plain(lm))]
    for n in range(order + 2):
        ctx = train[5 : 5 + n]
        for r in (b"", b"a", b"ab", b"cd a", b" " * 6):
            expected = brute(prob, pieces, ctx, r)
            for blm in backends:
                np.testing.assert_allclose(blm.cursor(ctx, r).probs(), expected, rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(blm.cursor(ctx, r, canonical=True).probs(),
                                           brute(prob, pieces, ctx, r, keep=_canonical_tail(tok, pieces, r)),
                                           rtol=1e-9, atol=1e-12)


class WindowLM:
    """A model that looks at exactly its last ``context_size`` tokens, with unrelated logits for
    every window: any two histories merged by mistake predict differently."""

    def __init__(self, vocab_size: int, context_size: int):
        self.vocab_size, self.context_size = vocab_size, context_size

    def next_token_logprobs(self, ctx):
        import zlib

        window = list(ctx)[max(0, len(ctx) - self.context_size):]
        rng = np.random.default_rng(zlib.crc32(np.asarray(window, dtype=np.int64).tobytes()))
        logits = 3.0 * rng.normal(size=self.vocab_size)
        logits[:3] = -np.inf
        return logits - np.logaddexp.reduce(logits[3:])

    def prob(self, ctx, t):
        return float(np.exp(self.next_token_logprobs(ctx)[t]))


@pytest.mark.parametrize("size", (1, 2, 3, 4))
def test_generic_window_every_context_length(tok, pieces, size):
    """The generic recursion merges histories by their last ``context_size`` tokens; a history
    shorter than that is its own key (the old slice cut it to its last tokens: 0.38 off)."""
    lm = WindowLM(tok.vocab_size, size)
    prob = memo(lm.prob)
    blm = ByteLevelLM(tok, lm)
    train = tok.encode(TRAIN)
    for n in range(size + 3):
        ctx = train[5 : 5 + n]
        for r in (b"ab", b"cd a", b" " * 6):
            np.testing.assert_allclose(blm.cursor(ctx, r).probs(), brute(prob, pieces, ctx, r), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(blm.cursor(ctx, r, canonical=True).probs(),
                                       brute(prob, pieces, ctx, r, keep=_canonical_tail(tok, pieces, r)),
                                       rtol=1e-9, atol=1e-12)


def _canonical_tail(tok, pieces, r):
    piece_of = {t: p for p, t in pieces.items()}
    return lambda seq: tok.encode(b"".join(piece_of[t] for t in seq)) == seq


def test_short_stable_context_reproduction(tok, pieces):
    """The issue's case: an order-4 model, a prompt whose stable prefix is shorter than three
    tokens. The prompt API uses every token of it (the old slice kept only the last one)."""
    lm, prob = lm_of(tok, 4)
    blm = ByteLevelLM(tok, lm, tokenizations="stable")
    found = False
    for prompt in ("abcd a", "ab cd a", "cd abcd ab", "ab ab"):
        ids, tail = tok.encode_stable(prompt)
        if 1 <= len(ids) < 3:
            found = True
        np.testing.assert_allclose(blm.next_byte_probs(prompt), brute(prob, pieces, list(ids), tok.normalize(tail)),
                                   rtol=1e-9, atol=1e-12)
    assert found


# -- the named distributions ------------------------------------------------------------------------
def _summed_part(tok, name, prompt) -> bytes:
    """The bytes whose tokenizations a distribution enumerates for ``prompt``."""
    data = tok.normalize(prompt)
    if name == "all":
        return data
    if name == "stable":
        return tok.normalize(tok.encode_stable(prompt)[1])
    return data[data.rfind(b"\n", 0, len(data.rstrip(b"\n"))) + 1 :]


def _context_length(tok, name, prompt) -> int:
    data = tok.normalize(prompt)
    if name == "all":
        return len(tok.encode(data))  # no context: the tokens the sum runs over
    if name == "stable":
        return len(tok.encode_stable(prompt)[0])
    return len(tok.encode(data[: len(data) - len(_summed_part(tok, name, prompt))]))


def _prompts(order):
    """Prompts whose context (the whole prompt's tokens for "all", the stable prefix, the tokens
    before the last chunk) has every length from 0 to order + 1 ("x" is a piece of its own)."""
    # "ab " and runs of spaces: "  " + " " and " " + "  " score the same, and float rounding
    # decides which the tokenizer takes
    out = ["", "a", "ab", "abcd ab", "ab\nabc", "cd\n\nab", "中文 ab\n中", "cd abc", "ab ", "a   ", "   "]
    for n in range(1, order + 2):
        out += ["x" * n, "x" * (n - 1) + " ab", "x" * (n - 1) + "\nab"]
    return out


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_distribution_matches_brute_force(tok, pieces, order, name):
    lm, prob = lm_of(tok, order)
    reference = REFERENCES[name]
    prompts = [p for p in _prompts(order) if len(_summed_part(tok, name, p)) <= 9]  # enumeration stays small
    assert {_context_length(tok, name, p) for p in prompts} >= set(range(order + 2))
    for backend in (lm, Plain(lm)):
        blm = ByteLevelLM(tok, backend, tokenizations=name)
        for prompt in prompts:
            expected = reference(tok, prob, pieces, prompt)
            got = blm.next_byte_probs(prompt)
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"{name} {prompt!r}")


def test_distributions_differ_where_they_should(tok):
    """Not three names for one computation: on a prompt cut inside "abcd", all three disagree."""
    lm, _ = lm_of(tok, 3)
    blm = ByteLevelLM(tok, lm)
    probs = {name: blm.next_byte_probs("cd abc", tokenizations=name) for name in REFERENCES}
    assert np.abs(probs["all"] - probs["stable"]).max() > 1e-4
    assert np.abs(probs["canonical"] - probs["stable"]).max() > 1e-2


def test_canonical_chained_and_generic_agree(tok):
    """The canonical cursor chains bytes (score, greedy, truncate, next characters) the same way
    through the kernels and the generic path."""
    lm, _ = lm_of(tok, 3)
    fast, slow = ByteLevelLM(tok, lm, tokenizations="canonical"), ByteLevelLM(tok, Plain(lm), tokenizations="canonical")
    for prompt in ("abcd ab", "ab\n\ncd a", "中"):
        a, b = fast.prompt_cursor(prompt), slow.prompt_cursor(prompt)
        n0 = len(a)
        assert a.score(b"cd ab") == pytest.approx(b.score(b"cd ab"), abs=1e-9)
        assert a.log_mass() == pytest.approx(b.log_mass(), abs=1e-9)
        a.truncate(n0)
        b.truncate(n0)
        assert a.greedy(6) == b.greedy(6)
        a.truncate(n0)
        chars = a.next_chars(3)
        assert len(a) == n0 and [c for c, _ in chars] == [c for c, _ in slow.prompt_cursor(prompt).next_chars(3)]
        for ch, p in chars:
            assert p == pytest.approx(math.exp(fast.logprob(prompt, ch)), rel=1e-9)


def test_boundary_split(tok, pieces):
    """The canonical next-byte mass split by where the last token starts: at the end of the
    prompt (a token boundary there) or before it (a token that goes on)."""
    lm, prob = lm_of(tok, 3)
    blm = ByteLevelLM(tok, lm)
    piece_of = {t: p for p, t in pieces.items()}
    checked = 0
    for x in (b"ab", b"abcd ", b"cd ab c", b"ab  ", b"cd"):
        def canonical(seq):
            return tok.encode(b"".join(piece_of[t] for t in seq)) == seq

        def starts_here(seq):
            return canonical(seq) and sum(len(piece_of[t]) for t in seq[:-1]) == len(x)

        every = brute(prob, pieces, [], x, keep=canonical, normalized=False)
        here = brute(prob, pieces, [], x, keep=starts_here, normalized=False)
        cur = blm.cursor([], x, canonical=True)
        given, share = cur.boundary_split()
        np.testing.assert_allclose(given, here / here.sum(), rtol=1e-9, atol=1e-12)
        assert share == pytest.approx(here.sum() / every.sum(), rel=1e-9)
        # told that a token starts after x, two bytes later: the sequences with a boundary there
        cur.assume_boundary(len(x))
        np.testing.assert_allclose(cur.probs(), given, rtol=1e-12, atol=1e-15)
        cur.extend(b" a")

        def through(seq):
            ends = np.cumsum([len(piece_of[t]) for t in seq[:-1]]).tolist()
            return canonical(seq) and (not x or len(x) in ends)

        told = brute(prob, pieces, [], x + b" a", keep=through, normalized=False)
        if told.sum() == 0:  # no canonical sequence has a boundary there: nothing left to predict
            assert cur.probs().sum() == 0
        else:
            np.testing.assert_allclose(cur.probs(), told / told.sum(), rtol=1e-9, atol=1e-12)
            checked += 1
        cur.truncate(len(x) - 1 if x else 0)  # going back before the boundary forgets it
        np.testing.assert_allclose(cur.probs(), blm.cursor([], x[:-1], canonical=True).probs(), rtol=1e-12)
    assert checked >= 3


def test_nfc_stable_prefix(tok):
    """"cafe" may still become "café" (e + U+0301 composes under NFC): the stable split keeps the
    "e" in the tail, so the context is never a token the continuation replaces."""
    nfc = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"caf": 9, "é".encode(): 9})
    lm = NGramLM.train(nfc.encode("café " * 20), nfc.vocab_size, order=2, min_id=3)
    blm = ByteLevelLM(nfc, lm, tokenizations="stable")
    for prompt in ("cafe", b"cafe"):
        cur = blm.prompt_cursor(prompt)
        assert cur.data == b"e"  # context [caf]; "e" may still become part of "é"
    ids, _ = nfc.encode_stable("cafe")
    assert nfc.encode("cafe\u0301")[: len(ids)] == ids


def test_complete_takes_every_name(tok):
    lm, _ = lm_of(tok, 3)
    blm = ByteLevelLM(tok, lm)
    for name in REFERENCES:
        assert complete(tok, lm, "abcd ab", strategy=f"exact-{name}", max_new_bytes=5).continuation == \
            blm.greedy("abcd ab", 5, tokenizations=name)
    with pytest.raises(InputError, match="unknown strategy 'exact'"):
        complete(tok, lm, "ab", strategy="exact")


def test_validation(tok):
    lm, _ = lm_of(tok, 2)
    with pytest.raises(InputError, match="unknown tokenizations"):
        ByteLevelLM(tok, lm, tokenizations="some")
    blm = ByteLevelLM(tok, lm)
    with pytest.raises(InputError, match="unknown tokenizations"):
        blm.next_byte_probs("ab", tokenizations="every")
    with pytest.raises(InputError, match="constrained"):
        blm.cursor([], b"ab", constrained=1, canonical=True)


class NoScores:
    """A tokenizer without piece scores (not a Viterbi tokenizer as far as anyone can tell)."""

    def __init__(self, tok, *, scores=None, encode=None):
        self._tok = tok
        self.vocab_size = tok.vocab_size
        if scores is not None:
            self.scores = scores
        self._encode = encode or tok.encode

    def normalize(self, text):
        return self._tok.normalize(text)

    def encode(self, text):
        return self._encode(text)

    def encode_stable(self, text):
        return self._tok.encode_stable(text)

    def decode_bytes(self, ids):
        return self._tok.decode_bytes(ids)

    def pieces(self):
        return self._tok.pieces()


def test_canonical_needs_a_viterbi_tokenizer(tok):
    lm, _ = lm_of(tok, 2)
    with pytest.raises(InputError, match="scores"):
        ByteLevelLM(NoScores(tok), lm).next_byte_probs("ab", tokenizations="canonical")
    ByteLevelLM(NoScores(tok), lm).next_byte_probs("ab", tokenizations="stable")  # the others need no scores

    def bytewise(text):  # an encoding that is not the Viterbi path of the scores
        return [tok.piece_to_id(bytes([b])) for b in tok.normalize(text)]

    other = NoScores(tok, scores=tok.scores, encode=bytewise)
    with pytest.raises(InputError, match="not the Viterbi segmentation"):
        ByteLevelLM(other, lm).next_byte_probs("abcd", tokenizations="canonical")


@pytest.mark.parametrize("offers", ["logprobs", "probs"])
def test_rows_of_the_wrong_length_name_the_method(tok, offers):
    """An LM whose rows do not cover the vocabulary is one error naming what returned them."""
    class Short:
        vocab_size = tok.vocab_size

        def next_token_logprobs(self, ctx):
            return np.zeros(self.vocab_size - 1)

    class ShortProbs(Short):
        def next_token_probs_batch(self, ctxs):
            return np.full((len(ctxs), self.vocab_size - 1), 1.0 / self.vocab_size)

    blm = ByteLevelLM(tok, Short() if offers == "logprobs" else ShortProbs())
    name = "next_token_logprobs" if offers == "logprobs" else "next_token_probs_batch"
    with pytest.raises(InputError, match=f"{name} returned rows of shape \\({tok.vocab_size - 1},\\), expected"):
        blm.cursor([], b"ab").probs()
