"""Token healing: prefix queries against brute force, the healing property, the generation loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.errors import InputError
from bytepiece.continuation.healing import VocabIndex, allowed_tokens, generate, heal
from bytepiece.continuation.lm import NGramLM


def brute_allowed(tokenizer, prefix: bytes) -> set[int]:
    out = set()
    for i, p in enumerate(tokenizer.pieces()):
        if p.startswith(prefix) or (len(p) < len(prefix) and prefix.startswith(p)):
            out.add(i + 3)
    return out


def test_allowed_matches_brute_force_tiny(tiny_tokenizer):
    index = VocabIndex.from_tokenizer(tiny_tokenizer)
    for prefix in [b"a", b"ab", b"abc", b"abcd", b"abcde", b"b", b"\xe4", b"\xe4\xb8\xad\xe6", b"\xff", b"\x00",
                   b"zz", b"  ", b"\n"]:
        got = index.allowed(prefix)
        assert len(set(got.tolist())) == len(got)
        assert set(got.tolist()) == brute_allowed(tiny_tokenizer, prefix), prefix
        mask = index.allowed_mask(prefix)
        assert set(np.flatnonzero(mask).tolist()) == set(got.tolist())
    # extensions are exactly the tokens starting with the prefix, proper prefixes shortest first
    assert [tiny_tokenizer.id_to_piece(i) for i in index.proper_prefixes(b"abcd")] == [b"a", b"ab", b"abc"]
    assert set(allowed_tokens(tiny_tokenizer, b"ab").tolist()) == brute_allowed(tiny_tokenizer, b"ab")


def test_allowed_matches_brute_force_large(load_shared_tokenizer):
    tok = load_shared_tokenizer("bytepiece.plus.160k")
    index = VocabIndex.from_tokenizer(tok)
    pieces = tok.pieces()
    rng = np.random.default_rng(0)
    prefixes = [b"import num", b"\xe7\x9a\x84", b" the", b"\xe4\xb8", b"\xff", b"    return self."]
    prefixes += [pieces[i][: int(rng.integers(1, len(pieces[i]) + 1))] + bytes(rng.integers(0, 256, 2).tolist())[: int(rng.integers(0, 3))]
                 for i in rng.integers(0, len(pieces), 20)]
    for prefix in prefixes:
        assert set(index.allowed(prefix).tolist()) == brute_allowed(tok, prefix), prefix


@st.composite
def texts(draw):
    alphabet = st.sampled_from(["a", "b", "c", "d", "ab", "abc", "中", "中文", "文", " ", "\n", "é", "e\u0301", "x", "😀", "1"])
    return "".join(draw(st.lists(alphabet, min_size=1, max_size=30)))


def _check_healing_property(tokenizer, index, prompt, k, data):
    healed = heal(tokenizer, prompt, k, index=index)
    target = tokenizer.normalize(prompt)
    assert tokenizer.decode_bytes(healed.kept_ids) + healed.prefix == target
    assert healed.prompt_ids == tokenizer.encode(prompt)
    # any token sequence allowed by the constraint, then anything at all
    ids = list(healed.kept_ids)
    pending = healed.prefix
    while pending:
        cand = index.allowed(pending).tolist()
        assert cand, pending
        token = data.draw(st.sampled_from(cand))
        ids.append(token)
        pending = index.advance(pending, token)
        assert pending is not None
    ids += data.draw(st.lists(st.integers(3, tokenizer.vocab_size - 1), max_size=3))
    assert tokenizer.decode_bytes(ids).startswith(target)
    assert tokenizer.decode(ids).startswith(target.decode("utf-8"))


@given(text=texts(), data=st.data(), k=st.sampled_from([1, 2, 3, "cover"]))
def test_healing_property_tiny(tiny_tokenizer, text, data, k):
    index = VocabIndex.from_tokenizer(tiny_tokenizer)
    cut = data.draw(st.integers(0, len(text)))
    _check_healing_property(tiny_tokenizer, index, text[:cut], k, data)


_big_index = {}


@settings(max_examples=50)
@given(data=st.data(), k=st.sampled_from([1, 2, "cover"]))
def test_healing_property_real_text(shared, load_shared_tokenizer, data, k):
    tok = load_shared_tokenizer("bytepiece_80k")
    if "index" not in _big_index:
        _big_index["index"] = VocabIndex.from_tokenizer(tok)
        lines = []
        for name in ("zh", "en", "code"):
            with open(shared / "corpora" / f"{name}.txt", encoding="utf-8") as f:
                lines += [next(f) for _ in range(30)]
        _big_index["lines"] = lines
    line = data.draw(st.sampled_from(_big_index["lines"]))
    cut = data.draw(st.integers(0, min(len(line), 400)))
    _check_healing_property(tok, _big_index["index"], line[:cut], k, data)


def test_heal_examples(tiny_tokenizer):
    h = heal(tiny_tokenizer, "xxabc", 1)
    assert h.prompt_ids == tiny_tokenizer.encode("xxabc")
    assert h.prefix == tiny_tokenizer.decode_bytes(h.prompt_ids[-1:])
    assert heal(tiny_tokenizer, "xxabc", 0).prefix == b""
    assert heal(tiny_tokenizer, "", 2).prefix == b"" and heal(tiny_tokenizer, "", 2).kept_ids == []
    assert heal(tiny_tokenizer, "ab", 5).kept_ids == []
    ids = tiny_tokenizer.encode("zab")
    assert heal(tiny_tokenizer, ids, 1).prefix == b"ab"  # ids are accepted too
    # "cover": z+ab is not the start of any piece, so only "ab" is removed
    assert heal(tiny_tokenizer, "zab", "cover").prefix == b"ab"
    with pytest.raises(InputError):
        heal(tiny_tokenizer, "ab", -1)


def _lm_for(tokenizer, text: str, order: int = 3) -> NGramLM:
    ids = tokenizer.encode(text)
    return NGramLM.train(ids, tokenizer.vocab_size, order=order, min_id=3)


def test_generate_greedy_heals_mid_token(tiny_tokenizer):
    # Trained on "abcd" repeated, the naive prompt "ab|" (token "ab") is never followed by "cd"
    # tokens the way "abcd" is; healing regenerates "abcd" and continues correctly.
    tok = tiny_tokenizer
    lm = _lm_for(tok, "abcd " * 50)
    index = VocabIndex.from_tokenizer(tok)
    healed = heal(tok, "abcd ab", 1, index=index)
    assert healed.prefix == b"ab"
    g = generate(lm.next_probs, index, healed.kept_ids, healed.prefix, max_new_bytes=4)
    assert g.prefix_met and g.data.startswith(b"ab")
    assert g.continuation[:3] == b"cd "
    # the same with log-probabilities (greedy is invariant to a monotone transform)
    g2 = generate(lm, index, healed.kept_ids, healed.prefix, max_new_bytes=4)
    assert g2.ids == g.ids


@given(data=st.data())
def test_generate_respects_constraint_with_any_scores(tiny_tokenizer, data):
    tok = tiny_tokenizer
    index = VocabIndex.from_tokenizer(tok)
    prompt = data.draw(texts())
    healed = heal(tok, prompt, data.draw(st.sampled_from([1, 2, "cover"])), index=index)
    seed = data.draw(st.integers(0, 2**32))
    rng = np.random.default_rng(seed)

    def scores(ctx):
        return rng.normal(size=tok.vocab_size)

    temperature = data.draw(st.sampled_from([0.0, 1.0]))
    g = generate(scores, index, healed.kept_ids, healed.prefix, max_new_bytes=5, temperature=temperature, seed=seed)
    assert g.prefix_met
    out = tok.decode_bytes(healed.kept_ids + g.ids)
    assert out.startswith(tok.normalize(prompt))
    assert len(g.continuation) >= 5
    assert g.data == tok.decode_bytes(g.ids)


def test_generate_validation(tiny_tokenizer):
    index = VocabIndex.from_tokenizer(tiny_tokenizer)
    with pytest.raises(InputError, match="shape"):
        generate(lambda ctx: np.zeros(3), index, [], b"a")
    with pytest.raises(InputError, match="temperature"):
        generate(lambda ctx: np.zeros(tiny_tokenizer.vocab_size), index, [], temperature=-1)
    # the token budget can end generation before the prefix is met
    g = generate(lambda ctx: -np.arange(tiny_tokenizer.vocab_size, dtype=float), index, [], b"abcd" * 3,
                 max_new_tokens=1)
    assert not g.prefix_met and g.continuation == b""


def test_strategy_names(tiny_tokenizer):
    from bytepiece.continuation.healing import STRATEGIES, TOKEN_STRATEGIES, backoff_of, exact_tokenizations

    tok = tiny_tokenizer
    for prompt in ["xxabc", "ab 中文 abcd", "zab"]:
        assert heal(tok, prompt, "naive") == heal(tok, prompt, 0)
        assert heal(tok, prompt, "healing") == heal(tok, prompt, 1) == heal(tok, prompt, "soft")
        assert heal(tok, prompt, "healing-3") == heal(tok, prompt, 3)
        assert heal(tok, prompt, "healing-d1") == heal(tok, prompt, "cover")
    assert list(TOKEN_STRATEGIES) == ["naive", "healing", "healing-d1", "healing-3", "soft"]
    assert list(STRATEGIES) == [*TOKEN_STRATEGIES, "exact-canonical", "exact-stable", "exact-all"]
    assert [exact_tokenizations(s) for s in STRATEGIES] == [None] * 5 + ["canonical", "stable", "all"]
    for strategy in ("exact-canonical", "exact-all"):
        with pytest.raises(InputError, match="backs off no tokens"):
            backoff_of(strategy)
    for bad in ("exact", "healing-7"):
        with pytest.raises(InputError, match="unknown strategy"):
            heal(tok, "ab", bad)


def test_soft_bias(tiny_tokenizer):
    tok = tiny_tokenizer
    index = VocabIndex.from_tokenizer(tok)
    lm = _lm_for(tok, "abcd " * 50 + "xy " * 80)
    healed = heal(tok, "abcd ab", 1, index=index)
    hard = generate(lm, index, healed.kept_ids, healed.prefix, max_new_bytes=4)
    # a bias larger than any log-probability gap is the hard constraint
    soft = generate(lm, index, healed.kept_ids, healed.prefix, max_new_bytes=4, bias=200.0)
    assert soft.ids == hard.ids and not soft.diverged
    # without a bias the first token is the LM's unconstrained favourite: after "xy " that is more
    # "xy", which disagrees with "ab": the prompt's end is rewritten and nothing is continued
    healed = heal(tok, "xy ab", 1, index=index)
    free = generate(lm, index, healed.kept_ids, healed.prefix, max_new_bytes=4, bias=0.0)
    top = int(np.argmax(lm.next_logprobs(healed.kept_ids)))
    assert free.ids == [top] and index.advance(healed.prefix, top) is None
    assert free.diverged and free.continuation == b"" and not free.prefix_met
    # a moderate bias keeps the agreeing tokens in front
    kept = generate(lm, index, healed.kept_ids, healed.prefix, max_new_bytes=4, bias=30.0)
    assert not kept.diverged and kept.prefix_met
    with pytest.raises(InputError, match="bias"):
        generate(lm, index, [], b"a", bias=float("inf"))
