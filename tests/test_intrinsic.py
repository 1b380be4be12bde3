"""Intrinsic metrics (bytepiece.evaluation.intrinsic) against hand computations on tiny count
vectors, their limits and edge cases, and their place in the results of ``bytepiece eval run``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece.errors import InputError
from bytepiece.evaluation import intrinsic as I

LN2 = math.log(2.0)


# -- hand computations ----------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 10.0, math.inf])
def test_uniform_distribution_is_fully_efficient(alpha):
    # p = (1/4, 1/4, 1/4, 1/4): sum p^a = 4 * 4^-a, so H_a = log(4^(1-a)) / (1 - a) = log 4 for
    # every a (and -sum p log p = log 4, -log max p = log 4): efficiency log 4 / log 4 = 1.
    counts = np.array([3, 3, 3, 3])
    assert I.renyi_entropy(counts, alpha) == pytest.approx(math.log(4))
    assert I.renyi_efficiency(counts, alpha) == pytest.approx(1.0)
    assert I.vocabulary_utilization(counts) == 1.0


# p = (3/4, 1/4), vocabulary of 2 (log 2 = ln 2, so the efficiency is the entropy in bits):
#   a = 1:   -(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 - (3/4) ln 3 = 0.562335 nats = 0.811278 bits
#   a = 2:   -ln(9/16 + 1/16) = ln(16/10) = ln 1.6 = 0.470004 nats; / ln 2 = log2 1.6 = 0.678072
#   a = 2.5: (3/4)^2.5 = 0.5625 * sqrt(0.75) = 0.487139, (1/4)^2.5 = 1/32 = 0.03125; sum 0.518389;
#            ln(0.518389) / (1 - 2.5) = -0.657029 / -1.5 = 0.438019 nats; / ln 2 = 0.631928
#   a = 3:   ln(27/64 + 1/64) / (1 - 3) = ln(16/7) / 2 = 0.413339 nats; / ln 2 = (4 - log2 7) / 2 = 0.596323
#   a = 0:   ln(2 pieces used) = ln 2; efficiency 1
#   a = inf: -ln(3/4) = ln(4/3); efficiency log2(4/3) = 0.415037
TWO_TOKENS = [(1.0, 0.562335, 0.811278), (2.0, 0.470004, 0.678072), (2.5, 0.438019, 0.631928),
              (3.0, 0.413339, 0.596323), (0.0, math.log(2), 1.0), (math.inf, math.log(4 / 3), 0.415037)]


@pytest.mark.parametrize(("alpha", "nats", "efficiency"), TWO_TOKENS)
def test_two_token_distribution_by_hand(alpha, nats, efficiency):
    assert I.renyi_entropy([3, 1], alpha) == pytest.approx(nats, abs=1e-6)
    assert I.renyi_efficiency([3, 1], alpha) == pytest.approx(efficiency, abs=1e-6)
    # the same text with two more, unused, pieces in the vocabulary: the same entropy over
    # log 4 = 2 ln 2, so half the efficiency; half of the vocabulary is used
    assert I.renyi_efficiency([3, 1, 0, 0], alpha) == pytest.approx(efficiency / 2, abs=1e-6)
    assert I.renyi_efficiency([3, 1], alpha, vocab_size=4) == pytest.approx(efficiency / 2, abs=1e-6)
    assert I.vocabulary_utilization([3, 1, 0, 0]) == 0.5
    # counts and probabilities describe the same distribution
    assert I.renyi_entropy([0.75, 0.25], alpha) == pytest.approx(nats, abs=1e-6)


def test_alpha_to_one_is_shannon():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=300)
    shannon = I.renyi_entropy(counts, 1.0)
    p = counts[counts > 0] / counts.sum()
    assert shannon == pytest.approx(-float(np.sum(p * np.log(p))), rel=1e-12)
    # the general formula approaches it from both sides, without losing digits next to 1 (the
    # plain log(sum p**a) / (1 - a) has only about 4 correct digits at a = 1 + 1e-12)
    for eps in (1e-3, 1e-5, 1e-7, 1e-12):
        assert I.renyi_entropy(counts, 1 - eps) == pytest.approx(shannon, rel=10 * eps)
        assert I.renyi_entropy(counts, 1 + eps) == pytest.approx(shannon, rel=10 * eps)
        assert I.renyi_entropy(counts, 1 - eps) >= shannon >= I.renyi_entropy(counts, 1 + eps)


def test_large_alpha_does_not_underflow():
    # 100,000 equally rare pieces: p^200 = 1e-1000 underflows, the log-sum-exp form does not;
    # the distribution is uniform, so H_a = ln 100000 for every a
    counts = np.ones(100_000)
    assert I.renyi_entropy(counts, 200.0) == pytest.approx(math.log(100_000))
    assert I.renyi_efficiency(counts, 200.0) == pytest.approx(1.0)


def test_single_token_type():
    # one piece is the whole text: p = (0, 1, 0); every H_a = log 1 = 0, efficiency 0
    for alpha in (0.0, 1.0, 2.5, math.inf):
        assert I.renyi_entropy([0, 7, 0], alpha) == 0.0
        assert I.renyi_efficiency([0, 7, 0], alpha) == 0.0
    assert I.vocabulary_utilization([0, 7, 0]) == pytest.approx(1 / 3)


def test_empty_text_and_bad_input_are_clear_errors():
    for counts in ([0, 0, 0], []):
        with pytest.raises(InputError, match="empty|non-empty"):
            I.renyi_efficiency(counts, 2.5)
    with pytest.raises(InputError, match="no tokens to measure"):
        I.profile([0, 0], [1, 2], raw_bytes=0)
    with pytest.raises(InputError, match="alpha"):
        I.renyi_entropy([1, 2], -1)
    with pytest.raises(InputError, match="alpha"):
        I.renyi_entropy([1, 2], float("nan"))
    with pytest.raises(InputError, match=">= 0"):
        I.renyi_entropy([1, -2], 2)
    with pytest.raises(InputError, match="1-D"):
        I.renyi_entropy([[1, 2]], 2)
    with pytest.raises(InputError, match="at least 2 pieces"):
        I.renyi_efficiency([5], 2.5)  # log |V| = 0: no efficiency for a one-piece vocabulary
    with pytest.raises(InputError, match="vocab_size"):
        I.vocabulary_utilization([1, 2, 3], vocab_size=2)
    with pytest.raises(InputError, match="token ids"):
        I.token_counts([1, 5], 5)
    with pytest.raises(InputError, match="at least one"):
        I.parity({})
    with pytest.raises(InputError, match="positive"):
        I.parity({"en": 0.25, "zh": 0.0})


def test_token_counts():
    # ids 3, 4, 4, 6 over pieces 3..6 (ids 0..2 are special): counts 1, 2, 0, 1
    assert I.token_counts([3, 4, 4, 6], 7, first_id=3).tolist() == [1, 2, 0, 1]
    assert I.token_counts(np.zeros(0, np.int32), 3).tolist() == [0, 0, 0]


def test_token_lengths_by_hand():
    # 5 tokens of 1 byte, 3 of 2, 2 of 3, none of the 4-byte piece: 10 tokens
    #   mean = (5*1 + 3*2 + 2*3) / 10 = 17 / 10 = 1.7
    #   shares 0.5, 0.3, 0.2 (cumulative 0.5, 0.8, 1.0): median 1 (half the tokens are <= 1 byte),
    #   p90 3 (0.8 < 0.9 <= 1.0); max 3 (the longest used, not the longest piece)
    #   vocabulary mean = (1 + 2 + 3 + 4) / 4 = 2.5
    got = I.token_lengths([5, 3, 2, 0], [1, 2, 3, 4])
    assert got["mean"] == pytest.approx(1.7)
    assert got["shares"] == pytest.approx([0.5, 0.3, 0.2])
    assert (got["median"], got["p90"], got["max"]) == (1, 3, 3)
    assert got["vocabulary_mean"] == pytest.approx(2.5)
    # pieces listed in any order: a histogram over lengths, with a gap at 2 bytes
    got = I.token_lengths([1, 0, 3], [4, 2, 1])
    assert got["shares"] == pytest.approx([0.75, 0.0, 0.0, 0.25]) and got["mean"] == pytest.approx(7 / 4)
    with pytest.raises(InputError, match="lengths"):
        I.token_lengths([1, 2], [1, 2, 3])
    with pytest.raises(InputError, match="lengths"):
        I.token_lengths([1, 2], [0, 2])


def test_parity_by_hand():
    # tokens per byte 0.25 (en), 0.5 (zh), 0.3 (code): the lowest is en's 0.25, so the premiums
    # are 1, 0.5 / 0.25 = 2 and 0.3 / 0.25 = 1.2, and the ratio highest / lowest = 2
    got = I.parity({"en": 0.25, "zh": 0.5, "code": 0.3})
    assert got["premium"] == pytest.approx({"en": 1.0, "zh": 2.0, "code": 1.2})
    assert got["ratio"] == pytest.approx(2.0)
    assert I.parity({"only": 0.4}) == {"premium": {"only": 1.0}, "ratio": 1.0}


def test_profile_and_pooled_profile_by_hand():
    lengths = [1, 1, 2, 3]
    # text a: 4 tokens in 10 bytes; text b: 6 tokens in 12 bytes
    a, b = np.array([2, 0, 2, 0]), np.array([0, 3, 0, 3])
    pa = I.profile(a, lengths, raw_bytes=10)
    assert (pa["tokens"], pa["bytes"], pa["vocab_size"], pa["types_used"]) == (4, 10, 4, 2)
    assert pa["tokens_per_byte"] == pytest.approx(0.4)
    # a is uniform over 2 of 4 pieces: every H_a = ln 2, efficiency ln 2 / ln 4 = 0.5
    assert pa["renyi_efficiency"] == pytest.approx({"1": 0.5, "2": 0.5, "2.5": 0.5, "3": 0.5})
    assert pa["vocabulary_utilization"] == 0.5
    pooled = I.pooled_profile({"a": (a, 10), "b": (b, 12)}, lengths)
    # together: counts (2, 3, 2, 3), 10 tokens in 22 bytes, every piece used
    assert (pooled["tokens"], pooled["bytes"], pooled["types_used"]) == (10, 22, 4)
    assert pooled["vocabulary_utilization"] == 1.0
    # Shannon: p = (.2, .3, .2, .3): -(2 * .2 ln .2 + 2 * .3 ln .3) = 0.643775 + 0.722366 = 1.366141
    # nats; / ln 4 = 0.985475
    assert pooled["renyi_efficiency"]["1"] == pytest.approx(0.985475, abs=1e-6)
    # tokens per byte: a 0.4, b 0.5; premiums 1 and 1.25, ratio 1.25
    assert pooled["parity"]["tokens_per_byte"] == pytest.approx({"a": 0.4, "b": 0.5})
    assert pooled["parity"]["premium"] == pytest.approx({"a": 1.0, "b": 1.25})
    assert pooled["parity"]["ratio"] == pytest.approx(1.25)
    # lengths: 2+3 one-byte, 2 two-byte, 3 three-byte tokens: mean (5 + 4 + 9) / 10 = 1.8
    assert pooled["token_length"]["mean"] == pytest.approx(1.8)
    json.dumps(pooled)  # JSON-ready
    with pytest.raises(InputError, match="no texts"):
        I.pooled_profile({}, lengths)


# -- properties -----------------------------------------------------------------------------------
count_vectors = st.lists(st.integers(0, 1000), min_size=2, max_size=60).filter(lambda c: sum(c) > 0)
orders = st.one_of(st.floats(0.0, 50.0), st.just(math.inf))


@given(count_vectors, orders)
def test_efficiency_lies_in_zero_one(counts, alpha):
    assert 0.0 <= I.renyi_efficiency(counts, alpha) <= 1.0
    assert 0.0 < I.vocabulary_utilization(counts) <= 1.0


@given(count_vectors, orders, st.randoms(use_true_random=False))
def test_permutation_invariant(counts, alpha, rnd):
    shuffled = list(counts)
    rnd.shuffle(shuffled)
    assert I.renyi_efficiency(shuffled, alpha) == pytest.approx(I.renyi_efficiency(counts, alpha), abs=1e-12)
    assert I.vocabulary_utilization(shuffled) == I.vocabulary_utilization(counts)


@given(count_vectors, st.floats(0.0, 20.0), st.floats(0.0, 20.0))
def test_entropy_does_not_increase_with_alpha(counts, a, b):
    low, high = sorted((a, b))
    assert I.renyi_entropy(counts, low) >= I.renyi_entropy(counts, high) - 1e-9
    # and stays between the limits: log(pieces used) at 0, -log max p at infinity
    used = sum(1 for c in counts if c)
    assert math.log(used) + 1e-9 >= I.renyi_entropy(counts, low)
    assert I.renyi_entropy(counts, high) >= -math.log(max(counts) / sum(counts)) - 1e-9


@given(count_vectors, st.integers(1, 5))
def test_scaling_counts_changes_nothing(counts, k):
    # the metrics see a distribution: the same text repeated k times has the same profile
    lengths = [1 + i % 7 for i in range(len(counts))]
    one = I.profile(counts, lengths, raw_bytes=100)
    many = I.profile([k * c for c in counts], lengths, raw_bytes=100 * k)
    assert many["renyi_efficiency"] == pytest.approx(one["renyi_efficiency"])
    lengths_one, lengths_many = dict(one["token_length"]), dict(many["token_length"])
    assert lengths_many.pop("shares") == pytest.approx(lengths_one.pop("shares"))
    assert lengths_many == pytest.approx(lengths_one)
    assert many["tokens_per_byte"] == pytest.approx(one["tokens_per_byte"])


# -- in the harness ---------------------------------------------------------------------------------
def _text(seed: int, lines: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["abcd", "ab", "cd", "bc", "中文", "x", "abc", "dab"]
    return "\n".join(" ".join(rng.choice(words, size=12)) + f" {seed}-{i}" for i in range(lines)) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small evaluation run of a hand-made vocabulary (a few cuts, one strategy)."""
    from bytepiece import Tokenizer
    from bytepiece.evaluation.runner import EvalConfig, run_evaluation

    d = tmp_path_factory.mktemp("intrinsic")
    counts = {bytes([b]): 1 + (b % 7) for b in range(256)}
    counts.update({b"ab": 30, b"abc": 12, b"bc": 25, b"abcd": 9, b"cd": 20, b"\xe4\xb8\xad\xe6\x96\x87": 8})
    Tokenizer.from_counts(counts).save(d / "tiny.model")
    (d / "train.txt").write_text(_text(1, 300), encoding="utf-8")
    (d / "en.txt").write_text(_text(2, 120), encoding="utf-8")
    (d / "zh.txt").write_text("中文中文 ab\n" * 40 + _text(3, 40), encoding="utf-8")
    config = EvalConfig(train=[d / "train.txt"], heldout=[d / "en.txt", d / "zh.txt"], models=[d / "tiny.model"],
                        cuts=4, generic_cuts=0, strategies=["naive"], alphas=[0.5], heldout_bytes=3000, workers=1,
                        order=2)
    return d, run_evaluation(config)


def test_run_records_intrinsic_metrics(run):
    from bytepiece import Tokenizer

    d, result = run
    res = json.loads(json.dumps(result))
    (t,) = res["tokenizers"]
    tok = Tokenizer(d / "tiny.model")
    pieces = len(tok.pieces())
    for name in ("en", "zh"):
        f = t["heldout"][name]
        m = f["intrinsic"]
        assert set(m) == {"tokens", "bytes", "tokens_per_byte", "vocab_size", "types_used", "renyi_efficiency",
                          "vocabulary_utilization", "token_length"}
        assert set(m["renyi_efficiency"]) == {"1", "2", "2.5", "3"}
        # the same tokens as compression counts, over the text's UTF-8 bytes
        assert (m["tokens"], m["bytes"]) == (f["compression"]["tokens"], f["compression"]["bytes"])
        assert m["tokens_per_byte"] == pytest.approx(1 / f["compression"]["bytes_per_token"])
        assert m["vocab_size"] == pieces and 0 < m["types_used"] <= pieces
        assert m["vocabulary_utilization"] == pytest.approx(m["types_used"] / pieces)
        assert sum(m["token_length"]["shares"]) == pytest.approx(1.0)
    p = t["pooled"]["intrinsic"]
    assert p["tokens"] == t["pooled"]["compression"]["tokens"]
    assert set(p["parity"]) == {"tokens_per_byte", "premium", "ratio"}
    tpb = {n: t["heldout"][n]["intrinsic"]["tokens_per_byte"] for n in ("en", "zh")}
    assert p["parity"]["tokens_per_byte"] == pytest.approx(tpb)
    assert p["parity"]["ratio"] == pytest.approx(max(tpb.values()) / min(tpb.values()))
    assert min(p["parity"]["premium"].values()) == pytest.approx(1.0)
    # pooled efficiency is that of the summed counts: recompute it from the files' encodings
    slices = _slices(d, res)
    ids = np.concatenate([np.asarray(tok.encode(s), dtype=np.int64) for s in slices])
    counts = I.token_counts(ids, tok.vocab_size, first_id=tok.vocab_size - pieces)
    assert p["renyi_efficiency"]["2.5"] == pytest.approx(I.renyi_efficiency(counts, 2.5))
    assert p["types_used"] == int(np.count_nonzero(counts))


def _slices(d, res):
    """The held-out slices of ``res`` carved again (they are seeded), checked by their hash."""
    from bytepiece.evaluation.corpus import heldout_slice, sha256_bytes

    train_lines = set((d / "train.txt").read_text(encoding="utf-8").split("\n"))
    out = []
    for h in res["heldout"]:
        cfg = res["config"]
        sl = heldout_slice(h["source"], "", target_bytes=cfg["heldout_bytes"], segments=cfg["heldout_segments"],
                           seed=cfg["seed"], name=h["name"], train_lines=train_lines)
        assert sha256_bytes(sl.text.encode("utf-8")) == h["sha256"]
        out.append(sl.text)
    return out


def test_report_shows_intrinsic_tables(run, tmp_path):
    from bytepiece.evaluation import report, tables

    _, result = run
    titles = [t.title for t in report.all_tables(result, width=None)]
    assert titles[-3:] == ["Intrinsic metrics of the held-out tokens, all held-out files",
                           "Intrinsic metrics per held-out file", "Token lengths in bytes, all held-out files"]
    main, files, lengths = tables.intrinsic_tables(result)
    t = result["tokenizers"][0]
    m = t["pooled"]["intrinsic"]
    assert main.rows[0][main.headers.index("eff a=2.5")] == f"{m['renyi_efficiency']['2.5']:.3f}"
    assert main.rows[0][main.headers.index("parity")] == f"{m['parity']['ratio']:.2f}"
    assert [r[1] for r in files.rows] == ["en", "zh"]
    shares = m["token_length"]["shares"]
    assert lengths.rows[0][lengths.headers.index("1 B %")] == f"{100 * shares[0]:.1f}"
    # the length buckets cover every token
    cells = [float(c) for h, c in zip(lengths.headers, lengths.rows[0]) if h.endswith(" B %")]
    assert sum(cells) == pytest.approx(100, abs=0.5)
    md = report.markdown_report(result)
    assert "**Intrinsic metrics per held-out file**" in md
    assert max(len(line) for line in md.splitlines() if line.startswith("|")) <= 80
    # results written before the metrics existed still load and render, without these tables
    old = json.loads(json.dumps(result))
    for tok in old["tokenizers"]:
        del tok["pooled"]["intrinsic"]
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    loaded = report.load_results(tmp_path / "old.json")
    assert tables.intrinsic_tables(loaded) == []
    assert not any("Intrinsic" in t.title for t in report.all_tables(loaded))
    # a damaged entry is the loader's one clear error
    bad = json.loads(json.dumps(result))
    del bad["tokenizers"][0]["pooled"]["intrinsic"]["parity"]
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(InputError, match="incomplete or damaged"):
        report.load_results(tmp_path / "bad.json")
