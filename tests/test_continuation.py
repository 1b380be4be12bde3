"""Exact byte-level continuation against brute-force enumeration of token sequences.

The references below enumerate every token sequence that covers the bytes (the definition in
``bytepiece.continuation``), asking the LM one token probability at a time; they share nothing
with the dynamic program but the LM itself.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.continuation import ByteLevelLM, NGramLM, StableSplit, VocabIndex, complete, generate, heal, stable_split
from bytepiece.continuation import kn as KN
from bytepiece.continuation.cursor import char_length
from bytepiece.continuation.split import stable_by_encoding
from bytepiece.errors import InputError

TRAIN = "abcd ab cd abc bcd abcd\n\nab 中文 中 " * 20


# -- references -------------------------------------------------------------------------------------
def agrees(piece: bytes, pending: bytes) -> bool:
    return piece.startswith(pending) or pending.startswith(piece)


def brute_mass(prob, pieces: dict[bytes, int], context: list[int], x: bytes, nl: int = 0,
               bias: float = math.inf) -> float:
    """Sum over the minimal covers t1..tk of ``x`` of the product of step weights. A step that
    starts at byte j < nl is token healing's: renormalised over the tokens agreeing with x[j:nl]
    (or, with a finite bias, those weighted by exp(bias))."""
    total = 0.0

    def weight(ctx, j, t):
        p = prob(ctx, t)
        if j >= nl:
            return p
        allowed = sum(prob(ctx, u) for q, u in pieces.items() if agrees(q, x[j:nl]))
        if bias == math.inf:
            return p / allowed
        return p * math.exp(bias) / (1 + (math.exp(bias) - 1) * allowed)

    def rec(ctx, pos, w):
        nonlocal total
        rest = x[pos:]
        for piece, t in pieces.items():
            if piece.startswith(rest):
                total += w * weight(ctx, pos, t)
            elif rest.startswith(piece):
                rec(ctx + [t], pos + len(piece), w * weight(ctx, pos, t))

    rec(list(context), 0, 1.0)
    return total


def brute_next(prob, pieces, context, r: bytes, nl: int = 0, bias: float = math.inf) -> np.ndarray:
    return np.array([brute_mass(prob, pieces, context, r + bytes([b]), nl, bias) for b in range(256)])


def memo(prob):
    """The same probabilities, each (context, token) asked of the LM once."""
    seen: dict = {}

    def cached(ctx, t):
        key = (tuple(ctx), t)
        if key not in seen:
            seen[key] = prob(ctx, t)
        return seen[key]

    return cached


class HashLM:
    """A token LM that looks at its whole history: logits drawn from a generator seeded by it."""

    def __init__(self, vocab_size: int, min_id: int = 3, sharp: float = 3.0):
        self.vocab_size, self.min_id, self.sharp = vocab_size, min_id, sharp
        self.calls = 0

    def next_token_logprobs(self, ctx):
        self.calls += 1
        rng = np.random.default_rng(zlib.crc32(np.asarray(ctx, dtype=np.int64).tobytes()))
        logits = self.sharp * rng.normal(size=self.vocab_size)
        logits[: self.min_id] = -np.inf
        return logits - np.logaddexp.reduce(logits[self.min_id:])

    def prob(self, ctx, t):
        return float(np.exp(self.next_token_logprobs(ctx)[t]))


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture(scope="module")
def pieces(tok):
    return {p: i + 3 for i, p in enumerate(tok.pieces())}


@pytest.fixture(scope="module", params=[1, 2, 3])
def kn(request, tok):
    ids = tok.encode(TRAIN, alpha=0.3, seed=1)
    return NGramLM.train(ids, tok.vocab_size, order=request.param, min_id=3)


CASES = [b"", b"a", b"ab", b"abc", b"b", b"\xe4", b"\xe4\xb8", b"cd a", b"\n", b" \xe4\xb8\xad"]


# -- exactness --------------------------------------------------------------------------------------
def test_exact_matches_brute_force(tok, pieces, kn):
    blm = ByteLevelLM(tok, kn)
    ctx = tok.encode("abcd ")
    for r in CASES:
        M = brute_next(kn.prob, pieces, ctx, r)
        cur = blm.cursor(ctx, r)
        p = cur.probs()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(p, M / M.sum(), rtol=1e-9, atol=1e-15)
        expected = math.log(brute_mass(kn.prob, pieces, ctx, r)) if r else 0.0
        assert cur.log_mass() == pytest.approx(expected, abs=1e-9)


@given(data=st.data())
def test_exact_matches_brute_force_random(tok, pieces, data):
    if "o3" not in _lm_cache:
        lm = NGramLM.train(tok.encode(TRAIN, alpha=0.5, seed=2), tok.vocab_size, order=3, min_id=3)
        _lm_cache["o3"], _lm_cache["o3prob"] = lm, memo(lm.prob)
    lm = _lm_cache["o3"]
    alphabet = st.sampled_from([b"a", b"b", b"c", b"d", b"ab", b" ", b"\xe4\xb8\xad", b"\xe4", b"x"])
    r = b"".join(data.draw(st.lists(alphabet, max_size=3)))[:5]
    ctx = data.draw(st.lists(st.sampled_from(sorted(pieces.values())), max_size=4))
    nl = data.draw(st.integers(0, len(r)))
    bias = data.draw(st.sampled_from([math.inf, 0.0, 2.5]))
    M = brute_next(_lm_cache["o3prob"], pieces, ctx, r, nl, bias)
    cur = ByteLevelLM(tok, lm).cursor(ctx, r, constrained=nl, bias=None if bias == math.inf else bias)
    np.testing.assert_allclose(cur.probs(), M / M.sum(), rtol=1e-9, atol=1e-15)
    assert cur.log_mass() == pytest.approx(math.log(M.sum()), abs=1e-9)


_lm_cache: dict = {}


def test_healing_and_soft_processes_match_brute_force(tok, pieces, kn):
    blm = ByteLevelLM(tok, kn)
    prob = memo(kn.prob)
    ctx = tok.encode("cd ")
    for r, nl in [(b"ab", 2), (b"abc", 3), (b"abc", 1), (b"\xe4\xb8", 2), (b"a b", 3)]:
        for bias in (math.inf, 1.5):
            M = brute_next(prob, pieces, ctx, r, nl, bias)
            cur = blm.cursor(ctx, r, constrained=nl, bias=None if bias == math.inf else bias)
            np.testing.assert_allclose(cur.probs(), M / M.sum(), rtol=1e-9, atol=1e-15)
            assert cur.log_mass() == pytest.approx(math.log(M.sum()), abs=1e-9)
        # a hard constraint is a proper process: the constrained bytes have probability 1
        assert blm.cursor(ctx, r[:nl], constrained=nl).log_mass() == pytest.approx(0.0, abs=1e-12)


def test_presummed_contexts_match_brute_force(tok, pieces, kn, monkeypatch):
    # every context pre-summed (the path large vocabularies take for frequent contexts) or none
    ctx = tok.encode("abcd ")
    prob = memo(kn.prob)
    results = []
    for threshold in (1, 10**9):
        monkeypatch.setattr(KN, "BIG_CONTEXT", threshold)
        blm = ByteLevelLM(tok, kn)
        assert (blm.kn.big_row >= 0).any() == (threshold == 1 and kn.order > 1)
        out = []
        for r, nl in [(b"", 0), (b"ab", 0), (b"abc", 0), (b"cd a", 0), (b"abc", 3), (b"ab", 1)]:
            cur = blm.cursor(ctx, r, constrained=nl)
            M = brute_next(prob, pieces, ctx, r, nl)
            np.testing.assert_allclose(cur.probs(), M / M.sum(), rtol=1e-9, atol=1e-15)
            out.append(cur.probs())
        results.append(out)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-17)


def test_generic_lm_matches_brute_force(tok, pieces):
    lm = HashLM(tok.vocab_size)
    blm = ByteLevelLM(tok, lm)
    for r, nl in [(b"", 0), (b"ab", 0), (b"abc", 0), (b"ab", 2), (b"\xe4\xb8", 1)]:
        M = brute_next(lm.prob, pieces, [7, 8], r, nl)
        cur = blm.cursor([7, 8], r, constrained=nl)
        assert cur.exact
        np.testing.assert_allclose(cur.probs(), M / M.sum(), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("probabilities", [False, True], ids=["logs", "probs"])
def test_generic_path_equals_kernel(tok, kn, probabilities):
    class Plain:  # the KN model seen only through the protocol (with its context size: states merge)
        vocab_size = kn.vocab_size
        context_size = kn.order - 1

        def next_token_logprobs(self, ctx):
            return kn.next_logprobs(ctx)

        def next_token_logprobs_batch(self, ctxs):
            return kn.next_token_logprobs_batch(ctxs)

    class PlainProbs(Plain):  # offers probabilities too: the generic path takes them instead
        def next_token_probs_batch(self, ctxs):
            return kn.next_token_probs_batch(ctxs)

        def next_token_logprobs_batch(self, ctxs):
            raise AssertionError("the generic path exponentiated log-probabilities it could have had directly")

    fast, slow = ByteLevelLM(tok, kn), ByteLevelLM(tok, PlainProbs() if probabilities else Plain())
    ctx = tok.encode("x abcd")
    for r, nl in [(b"abcd ab", 0), (b"ab", 2), (b"abcd", 4)]:
        a, b = fast.cursor(ctx, r, constrained=nl), slow.cursor(ctx, r, constrained=nl)
        np.testing.assert_allclose(a.probs(), b.probs(), rtol=1e-9, atol=1e-15)
        assert a.score(b"c ab") == pytest.approx(b.score(b"c ab"), abs=1e-9)
        assert a.greedy(6) == b.greedy(6)


def test_generic_path_keeps_only_the_context_the_lm_reads(tok, kn):
    """Every state of the generic cursor holds the last ``context_size`` tokens of its history,
    not the whole history: a long text (eval run's exact-all check extends over a held-out file)
    took memory quadratic in its length (24 GB for 50 KB of English)."""
    class Plain:
        vocab_size = kn.vocab_size
        context_size = kn.order - 1

        def next_token_logprobs(self, ctx):
            return kn.next_logprobs(ctx)

    cur = ByteLevelLM(tok, Plain()).cursor(tok.encode("x abcd"), b"")
    cur.extend(b"abcd ab " * 100)
    histories = [hist for states in cur._pos[1:] for _, hist, _ in states.values()]
    assert len(histories) >= 800
    assert max(map(len, histories)) <= Plain.context_size


def test_chaining(tok, pieces, kn):
    blm = ByteLevelLM(tok, kn)
    ctx = tok.encode("abcd ")
    cur = blm.cursor(ctx, b"ab")
    got = cur.score(b"cd")
    expected = math.log(brute_mass(kn.prob, pieces, ctx, b"abcd") / brute_mass(kn.prob, pieces, ctx, b"ab"))
    assert got == pytest.approx(expected, abs=1e-9) and cur.data == b"abcd"
    cur.truncate(2)
    assert cur.data == b"ab"
    first = cur.probs()
    out = cur.greedy(3)
    assert out[0] == int(np.argmax(first))
    cur.truncate(2)
    assert cur.greedy(3) == out
    # next-character probabilities agree with chained byte probabilities
    chars = blm.next_char_probs("abcd ab中", top=4)
    assert [p for _, p in chars] == sorted((p for _, p in chars), reverse=True)
    for ch, p in chars:
        assert p == pytest.approx(math.exp(blm.logprob("abcd ab中", ch)), rel=1e-9)
        assert len(ch) == char_length(ch[0])


def test_sampling_follows_the_distribution(tok, kn):
    from scipy import stats

    blm = ByteLevelLM(tok, kn)
    p = blm.next_byte_probs("abcd ab")
    draws = [blm.sample("abcd ab", 1, seed=s)[0] for s in range(400)]
    assert blm.sample("abcd ab", 5, seed=3) == blm.sample("abcd ab", 5, seed=3)
    common = np.flatnonzero(p * 400 >= 5)
    observed = np.array([sum(d == b for d in draws) for b in common] + [sum(d not in common for d in draws)])
    expected = np.concatenate([p[common], [1 - p[common].sum()]]) * 400
    keep = expected > 0
    assert stats.chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()).pvalue > 1e-4


def test_state_growth_and_replay(tok, kn, monkeypatch):
    ctx = tok.encode("abcd ")
    blm = ByteLevelLM(tok, kn)
    ref = blm.cursor(ctx, b"abcdabcd ab")
    monkeypatch.setattr(KN, "FIRST_STATES", 1)  # every position overflows at first
    small = blm.cursor(ctx, b"abcdabcd ab")
    np.testing.assert_allclose(small.probs(), ref.probs(), rtol=1e-12)
    assert small.greedy(4) == ref.greedy(4)
    if kn.order > 1:  # a unigram LM has one state (the empty context) at every position
        with pytest.raises(InputError, match="max_states"):
            ByteLevelLM(tok, kn, max_states=1).cursor(ctx, b"abcdabcd ab")


def test_long_tail_and_truncate_past_the_ring(tok, kn):
    blm = ByteLevelLM(tok, kn)
    tail = b"\xe4" * 150 + b"abcd" * 40
    cur = blm.cursor([], tail)
    p = cur.probs()
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert math.isfinite(cur.log_mass()) and cur.log_mass() < -300  # far below float64's smallest normal
    cur.truncate(10)  # the ring no longer holds these positions: replayed
    np.testing.assert_allclose(cur.probs(), blm.cursor([], tail[:10]).probs(), rtol=1e-12)
    with pytest.raises(InputError):
        blm.cursor([], b"ab", constrained=2).truncate(1)


def test_validation(tok, kn):
    with pytest.raises(InputError, match="next_token_logprobs"):
        ByteLevelLM(tok, object())
    with pytest.raises(InputError, match="predicts"):
        ByteLevelLM(tok, HashLM(tok.vocab_size + 1))
    blm = ByteLevelLM(tok, kn)
    with pytest.raises(InputError, match="constrained"):
        blm.cursor([], b"ab", constrained=3)
    with pytest.raises(InputError, match="bias"):
        blm.cursor([], b"ab", constrained=1, bias=float("nan"))


# -- the stable prefix ------------------------------------------------------------------------------
@st.composite
def texts(draw):
    alphabet = st.sampled_from(["a", "b", "c", "d", "ab", "abc", "中", "中文", "文", " ", "\n", "x", "1"])
    return "".join(draw(st.lists(alphabet, max_size=25)))


class Foreign:
    """A tokenizer without ``encode_stable`` (another library's): the split falls back to
    encoding prefixes."""

    def __init__(self, tok):
        self._tok = tok
        self.vocab_size = tok.vocab_size

    def normalize(self, text):
        return self._tok.normalize(text)

    def encode(self, text):
        return self._tok.encode(text)

    def decode_bytes(self, ids):
        return self._tok.decode_bytes(ids)

    def pieces(self):
        return self._tok.pieces()


def _check_stable(tokenizer, prompt, continuations):
    if id(tokenizer) not in _lm_cache:
        _lm_cache[id(tokenizer)] = VocabIndex.from_tokenizer(tokenizer)
    index = _lm_cache[id(tokenizer)]
    data = tokenizer.normalize(prompt)
    for split in (stable_split(tokenizer, prompt, index=index), stable_split(Foreign(tokenizer), prompt, index=index),
                  stable_by_encoding(tokenizer, data, index=index)):
        assert tokenizer.decode_bytes(split.ids) + split.tail == data
        for cont in continuations:
            assert tokenizer.encode(prompt + cont)[: len(split.ids)] == split.ids, (prompt, cont)
    # the tokenizer's own split is encode_stable (it also knows what NFC may still change)
    ids, tail = tokenizer.encode_stable(data.decode("utf-8"))
    assert stable_split(tokenizer, prompt, index=index) == StableSplit(ids, tokenizer.normalize(tail))


@given(prompt=texts(), conts=st.lists(texts(), min_size=1, max_size=4))
def test_stable_prefix_never_changes_tiny(tok, prompt, conts):
    _check_stable(tok, prompt, conts)


@given(prompt=texts(), conts=st.lists(texts(), min_size=1, max_size=3))
def test_stable_prefix_never_changes_default_model(prompt, conts):
    from bytepiece_data import DEFAULT_MODEL, data_file

    if "default" not in _lm_cache:
        _lm_cache["default"] = Tokenizer(data_file(DEFAULT_MODEL))
    t = _lm_cache["default"]
    _check_stable(t, prompt, conts)


def test_stable_prefix_examples(tok):
    s = stable_split(tok, "xx abcd ab")
    assert s.tail == b"ab" and tok.decode_bytes(s.ids) == b"xx abcd "
    assert stable_split(tok, "") == StableSplit([], b"")
    # a finished chunk is stable; the open last chunk may be extended by another newline
    s = stable_split(tok, "ab\n\nab")
    assert tok.decode_bytes(s.ids).startswith(b"ab\n\n")


# -- strategies end to end --------------------------------------------------------------------------
def test_complete_strategies(tok, kn):
    index = VocabIndex.from_tokenizer(tok)
    prompt = "abcd ab cd ab"
    blm = ByteLevelLM(tok, kn, index=index)
    for name in ("canonical", "stable", "all"):
        got = complete(tok, kn, prompt, strategy=f"exact-{name}", max_new_bytes=6).continuation
        assert got == blm.greedy(prompt, 6, tokenizations=name)
    for strategy, k in (("naive", 0), ("healing", 1), ("healing-d1", "cover"), ("healing-3", 3)):
        h = heal(tok, prompt, k, index=index)
        g = generate(kn.next_token_logprobs, index, h.kept_ids, h.prefix, max_new_bytes=6)
        assert complete(tok, kn, prompt, strategy=strategy, max_new_bytes=6, index=index).continuation == g.continuation
    # a huge bias is the hard constraint; the soft strategy otherwise may rewrite the prompt
    hard = complete(tok, kn, prompt, strategy="healing", max_new_bytes=6)
    assert complete(tok, kn, prompt, strategy="soft", soft_bias=500.0, max_new_bytes=6) == \
        type(hard)("soft", hard.continuation, False)
    with pytest.raises(InputError, match="unknown strategy"):
        complete(tok, kn, prompt, strategy="nope")


# -- a transformers model through the adapter -------------------------------------------------------
def test_hf_adapter_needs_torch(monkeypatch):
    import sys

    from bytepiece.continuation.adapters import HFCausalLM

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InputError, match=r"bytepiece-tk\[lm\]"):
        HFCausalLM(object(), vocab_size=10)


def test_hf_causal_lm_matches_brute_force(tok, pieces):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from bytepiece.continuation.adapters import HFCausalLM

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size + 4, n_positions=64, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    lm = HFCausalLM(model, vocab_size=tok.vocab_size, bos_id=1)
    batch = lm.next_token_logprobs_batch([[5], [5, 6, 7], []])
    for row, ctx in zip(batch, [[5], [5, 6, 7], []]):
        np.testing.assert_allclose(row, lm.next_token_logprobs(ctx), atol=1e-6)
        assert np.exp(row).sum() == pytest.approx(1.0)
    blm = ByteLevelLM(tok, lm)

    cache: dict = {}

    def prob(ctx, t):
        key = tuple(ctx)
        if key not in cache:
            cache[key] = np.exp(lm.next_token_logprobs(ctx))
        return float(cache[key][t])

    for r in (b"", b"ab", b"abc"):
        M = brute_next(prob, pieces, [7], r)
        np.testing.assert_allclose(blm.cursor([7], r).probs(), M / M.sum(), rtol=1e-6, atol=1e-12)
