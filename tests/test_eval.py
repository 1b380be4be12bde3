"""The evaluation harness: building blocks against brute force, the runner's JSON, the CLI.

Texts are synthetic (a seeded pseudo-language of Latin syllables, CJK characters and code-like
lines), written to tmp files; nothing is read from ../shared.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bytepiece import Tokenizer
from bytepiece.errors import InputError
from bytepiece.evaluation import continuation as C
from bytepiece.evaluation import metrics as M
from bytepiece.evaluation.corpus import MIN_DISTINCTIVE_CHARS, heldout_slice
from bytepiece.evaluation.pooling import pooled_files
from bytepiece.evaluation.runner import EvalConfig, run_evaluation
from bytepiece.continuation.healing import STRATEGIES
from bytepiece.continuation.lm import NGramLM

SYLLABLES = ["ka", "to", "ri", "mon", "sel", "a", "e", "tha", "ing", "str", "qu", "ov"]
HAN = [chr(0x4E00 + i * 37) for i in range(40)]


def make_text(seed: int, lines: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(SYLLABLES, size=rng.integers(1, 4))) for _ in range(150)]
    phrases = ["".join(rng.choice(HAN, size=rng.integers(2, 5))) for _ in range(60)]
    out = []
    for i in range(lines):
        kind = i % 5
        if kind == 3:
            out.append("".join(rng.choice(phrases, size=rng.integers(4, 12))) + "。")
        elif kind == 4:
            name = rng.choice(words)
            out.append(f"def {name}(x):\n    return x + {int(rng.integers(100))}  # {rng.choice(words)}")
        else:
            zipf = np.minimum(rng.zipf(1.4, size=rng.integers(6, 20)), len(words)) - 1
            out.append(" ".join(words[j] for j in zipf).capitalize() + ".")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalcorpus")
    train = make_text(1, 1500)
    (d / "train.txt").write_text(train, encoding="utf-8")
    # held-out sources: mostly new lines, plus lines copied from training that must not be sliced
    train_lines = train.split("\n")
    for name, seed in (("alpha", 2), ("beta", 3)):
        lines = make_text(seed, 400).split("\n")
        lines[10:10] = train_lines[100:140]
        (d / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def small_tokenizer(corpus):
    from bytepiece import Trainer

    trainer = Trainer(max_vocab_size=400, workers=1, progress=False)
    (model,) = trainer.train(corpus / "train.txt")
    path = corpus / "small.model"
    model.save(path, overwrite=True)
    return Tokenizer(path)


# -- building blocks ----------------------------------------------------------------------------
def test_cuts_at_character_boundaries():
    data = "a中b😀\nxé".encode("utf-8") * 50
    cuts = C.choose_cuts(data, 40, 7, min_after=8)
    assert len(cuts) == 40 and len(set(cuts.tolist())) == 40 and np.all(np.diff(cuts) > 0)
    assert np.all(cuts >= 1) and np.all(cuts <= len(data) - 8)
    for b in cuts.tolist():  # a character boundary: both halves decode
        data[:b].decode("utf-8")
        data[b:].decode("utf-8")
    np.testing.assert_array_equal(cuts, C.choose_cuts(data, 40, 7, min_after=8))
    assert len(C.choose_cuts(data[:5], 3, 0, min_after=8)) == 0
    assert len(C.choose_cuts("中文".encode(), 10, 0, min_after=1)) == 1


def test_prompts_match_brute_force(tiny_tokenizer):
    tok = tiny_tokenizer
    text = "abcd ab\nabc 中文中\n\nxabcdab  cd 中\n" * 6
    enc = M.encode_text(tok, text, "t")
    assert enc.ids.tolist() == tok.encode(text)  # chunked encoding = whole-text encoding
    cuts = C.choose_cuts(enc.data, 60, 3, min_after=1)
    prompts = C.build_prompts(tok, enc, cuts)
    full_bounds = set(np.cumsum([len(p) for p in tok.tokenize(text)]).tolist())
    for i, (b, boundary) in enumerate(zip(cuts.tolist(), prompts.is_boundary.tolist())):
        own = tok.encode(enc.data[:b])
        for n in (0, 1, 4, 40):
            assert prompts.tail(i, n) == (own[max(0, len(own) - n) :] if n else [])
        assert boundary == (b in full_bounds)
        # the prompt's last chunk is open: the encoding before it is final, its own tokens follow
        assert prompts.ids[: prompts.before[i]].tolist() + prompts.own[i] == own
        assert enc.data[:b].endswith(prompts.last[i]) and prompts.last[i]


def test_sampling_profile_against_spans(tiny_tokenizer):
    tok = tiny_tokenizer
    text = "abcdabcab 中文中文 abcd\n" * 20
    enc = M.encode_text(tok, text, "t")
    (row,) = M.sampling_profile(tok, enc, [0.3], seed=5)
    chunk_ids = tok.encode_batch(enc.chunks, alpha=0.3, seed=5)
    sampled = [i for ids in chunk_ids for i in ids]

    def spans(ids):
        ends = np.cumsum([len(tok.id_to_piece(i)) for i in ids])
        return set(zip((ends - [len(tok.id_to_piece(i)) for i in ids]).tolist(), ends.tolist()))

    viterbi, samp = spans(enc.ids.tolist()), spans(sampled)
    assert row["tokens"] == len(sampled)
    assert row["changed_fraction"] == pytest.approx(len(samp - viterbi) / len(sampled))
    assert row["viterbi_kept_fraction"] == pytest.approx(len(samp & viterbi) / len(enc.ids))
    assert row["bytes_per_token"] == pytest.approx(len(text.encode()) / len(sampled))


def test_bits_per_byte_by_hand(tiny_tokenizer):
    tok = tiny_tokenizer
    train_ids = tok.encode("abcd ab cd " * 30)
    lm = NGramLM.train(train_ids, tok.vocab_size, order=2, min_id=3)
    text = "abcd cd ab"
    enc = M.encode_text(tok, text, "t")
    ids = enc.ids.tolist()
    bits = -math.log2(lm.prob([], ids[0])) - sum(math.log2(lm.prob([ids[i - 1]], ids[i])) for i in range(1, len(ids)))
    got = M.bits_per_byte(lm, enc)
    assert got["bits"] == pytest.approx(bits, rel=1e-12)
    assert got["bits_per_byte"] == pytest.approx(bits / len(text.encode()), rel=1e-12)


def test_heldout_slice_excludes_training_lines(corpus):
    train = (corpus / "train.txt").read_text(encoding="utf-8")
    train_lines = set(train.split("\n"))
    sl = heldout_slice(corpus / "alpha.txt", train, target_bytes=5000, segments=3, seed=1)
    assert 4000 <= len(sl.text.encode()) <= 8000
    assert sl.lines_seen >= 30
    assert sl.lines_total == len((corpus / "alpha.txt").read_text(encoding="utf-8").splitlines())  # as wc -l counts
    distinctive = [line for line in sl.text.split("\n") if len("".join(line.split())) >= MIN_DISTINCTIVE_CHARS]
    assert distinctive and not any(line in train_lines for line in distinctive)
    with pytest.raises(InputError, match="every line"):
        heldout_slice(corpus / "train.txt", train)


def test_pooled_is_weighted():
    def file(tokens, nbytes, b_n, m_n, b_acc, m_acc, bits):
        cond = {"all": {"n": b_n + m_n, "next_char": (b_acc * b_n + m_acc * m_n) / (b_n + m_n), "next_bytes": 0.0,
                        "matched_bytes": 1.0},
                "boundary": {"n": b_n, "next_char": b_acc, "next_bytes": 0.0, "matched_bytes": 1.0},
                "mid_token": {"n": m_n, "next_char": m_acc, "next_bytes": 0.0, "matched_bytes": 1.0}}
        return {"compression": {"tokens": tokens, "bytes": nbytes, "chars": nbytes},
                "bits_per_byte": {"det": {"bits": bits}},
                "continuation": {"cuts": b_n + m_n, "conditions": {"naive/det": cond}},
                "sampling": [{"alpha": 0.1, "tokens": 2 * tokens, "changed_fraction": 0.5, "viterbi_kept_fraction": 0.25}]}

    p = pooled_files({"a": file(100, 400, 10, 30, 0.5, 0.1, 800.0), "b": file(300, 600, 30, 10, 0.2, 0.3, 1200.0)})
    assert p["compression"]["bytes_per_token"] == pytest.approx(1000 / 400)
    assert p["bits_per_byte"]["det"]["bits_per_byte"] == pytest.approx(2000 / 1000)
    c = p["continuation"]
    assert c["cuts"] == 80 and c["mid_token_fraction"] == pytest.approx(40 / 80)
    assert c["conditions"]["naive/det"]["boundary"]["next_char"] == pytest.approx((5 + 6) / 40)
    assert c["conditions"]["naive/det"]["mid_token"]["next_char"] == pytest.approx((3 + 3) / 40)
    assert p["sampling"][0]["changed_fraction"] == pytest.approx(0.5)
    assert p["sampling"][0]["bytes_per_token"] == pytest.approx(1000 / 800)


# -- the runner ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result(corpus, small_tokenizer):
    config = EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt", corpus / "beta.txt"],
                        models=[corpus / "small.model"], vocab_sizes=[300, 700], cuts=150, alphas=[0.1, 1.0],
                        heldout_bytes=6000, seed=3, workers=1, save_models=corpus / "saved", generic_cuts=10)
    return run_evaluation(config)


def _check_fraction(x):
    assert x is not None and 0.0 <= x <= 1.0


def test_runner_result(result):
    res = json.loads(json.dumps(result))  # JSON-ready
    assert set(res) >= {"config", "environment", "train", "heldout", "tokenizers", "timings", "created"}
    assert res["config"]["seed"] == 3 and res["config"]["alphas"] == [0.1, 1.0]
    assert res["train"][0]["sha256"] and len(res["train"][0]["sha256"]) == 64
    assert [h["name"] for h in res["heldout"]] == ["alpha", "beta"]
    for h in res["heldout"]:
        assert h["distinctive_lines_in_training"] == 0 and h["source_lines_seen_in_training"] >= 30
        assert len(h["source_sha256"]) == 64 and h["bytes"] > 3000
    names = [t["name"] for t in res["tokenizers"]]
    assert names == ["bnlm-300", "bnlm-700", "small"]
    for t in res["tokenizers"]:
        assert t["vocab_size"] <= 700
        for lm in ("det", "sampled"):
            assert t["lm"][lm]["train_tokens"] > 1000
        assert t["lm"]["sampled"]["train_tokens"] >= t["lm"]["det"]["train_tokens"]
        for name in ("alpha", "beta"):
            f = t["heldout"][name]
            comp = f["compression"]
            assert comp["bytes_per_token"] == pytest.approx(comp["bytes"] / comp["tokens"])
            assert 1.0 <= comp["bytes_per_token"] <= 36
            for lm in ("det", "sampled"):
                bpb = f["bits_per_byte"][lm]["bits_per_byte"]
                assert math.isfinite(bpb) and 0 < bpb < 8
            cont = f["continuation"]
            assert cont["cuts"] == 150
            _check_fraction(cont["mid_token_fraction"])
            assert set(cont["conditions"]) == {f"{s}/{lm}" for s in STRATEGIES for lm in ("det", "sampled")}
            n_mid = round(cont["mid_token_fraction"] * cont["cuts"])
            for cond in cont["conditions"].values():
                assert cond["boundary"]["n"] + cond["mid_token"]["n"] == cond["all"]["n"] == cont["cuts"]
                assert cond["mid_token"]["n"] == n_mid
                assert cond["seconds_per_cut"] > 0
                for key in ("next_char", "next_bytes", "matched_bytes", "logloss_bits"):
                    # "all" is the cut-weighted mean of its two parts
                    parts = [(cond[p]["n"], cond[p][key]) for p in ("boundary", "mid_token") if cond[p]["n"]]
                    assert cond["all"][key] == pytest.approx(sum(n * v for n, v in parts) / cont["cuts"])
                for part in ("all", "boundary", "mid_token"):
                    if cond[part]["n"]:
                        c = cond[part]
                        assert 0 <= c["next_bytes"] <= c["next_char"] <= 1
                        # each cut whose first character matches contributes at least one matched
                        # byte, and each full match exactly 8
                        assert c["next_char"] <= c["matched_bytes"] + 1e-12
                        assert 8 * c["next_bytes"] <= c["matched_bytes"] <= 8
                        assert c["logloss_bits"] > 0 and math.isfinite(c["logloss_bits"])
            assert [s["alpha"] for s in f["sampling"]] == [0.1, 1.0]
            for s in f["sampling"]:
                _check_fraction(s["changed_fraction"])
                _check_fraction(s["viterbi_kept_fraction"])
                assert s["bytes_per_token"] <= comp["bytes_per_token"] + 1e-9  # Viterbi has the fewest tokens
        pooled = t["pooled"]
        assert pooled["continuation"]["cuts"] == 300
        # exact-canonical also says how much of its mass is on a token starting at the cut
        canon = pooled["continuation"]["conditions"]["exact-canonical/det"]
        for part in ("all", "boundary", "mid_token"):
            _check_fraction(canon[part]["boundary_mass"])
            _check_fraction(canon[part]["next_char_given_boundary"])
        # the generic LM path computes what the kernels compute, on the first cuts of each file
        generic = pooled["continuation"]["generic"]
        assert generic["cuts"] == 20 and set(generic["strategies"]) == {"exact-canonical", "exact-stable", "exact-all"}
        for cell in generic["strategies"].values():
            assert cell["same_continuation"] == 1.0 and cell["max_logloss_diff_bits"] < 1e-9
            assert cell["seconds_per_cut"] > 0 and cell["kernel_seconds_per_cut"] > 0
        _check_fraction(pooled["continuation"]["mid_token_fraction"])


def _without_times(entry):
    if isinstance(entry, dict):
        return {k: _without_times(v) for k, v in entry.items() if k != "seconds_per_cut"}
    return entry


def test_runner_cuts_are_paired_and_seeded(result, corpus):
    # Every tokenizer (same normalization) is scored on the same cut positions: the ones
    # choose_cuts draws from the slice's bytes, the seed and the file name. Recompute them and the
    # boundary/mid split of each tokenizer from its own whole-text encoding.
    from bytepiece import Tokenizer as Tok

    slices = {h["name"]: heldout_slice(corpus / f"{h['name']}.txt", (corpus / "train.txt").read_text(encoding="utf-8"),
                                       target_bytes=6000, seed=3, name=h["name"]).text for h in result["heldout"]}
    for name, text in slices.items():
        data = text.encode("utf-8")
        cuts = C.choose_cuts(data, 150, C.cut_seed(3, name), min_after=8)
        digests = {t["heldout"][name]["continuation"]["cuts_sha256"] for t in result["tokenizers"]}
        assert digests == {C.cuts_digest(cuts)}
        for t in result["tokenizers"]:
            tok = Tok(t["saved_to"]) if t.get("saved_to") else Tok(t["source"])
            ends = set(np.cumsum([len(p) for p in tok.tokenize(text)]).tolist())
            mid = sum(1 for b in cuts.tolist() if b not in ends)
            assert t["heldout"][name]["continuation"]["mid_token_fraction"] == pytest.approx(mid / len(cuts))
    # the same configuration gives the same numbers (timings aside)
    config = EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt", corpus / "beta.txt"],
                        models=[corpus / "small.model"], cuts=150, alphas=[0.1, 1.0], heldout_bytes=6000, seed=3,
                        strategies=["naive", "exact-stable", "exact-canonical"], generic_cuts=0)
    again = run_evaluation(config)
    a = next(t for t in result["tokenizers"] if t["name"] == "small")
    b = again["tokenizers"][0]
    for name in slices:
        ca, cb = a["heldout"][name]["continuation"], b["heldout"][name]["continuation"]
        assert set(cb["conditions"]) == {f"{s}/{lm}" for s in ("naive", "exact-stable", "exact-canonical")
                                         for lm in ("det", "sampled")}
        for cond in cb["conditions"]:
            assert _without_times(cb["conditions"][cond]) == _without_times(ca["conditions"][cond])
    assert again["heldout"] == result["heldout"]


def test_harness_scores_equal_library_calls(small_tokenizer, corpus):
    # Per cut, the harness's greedy continuation and log-loss equal what the public API computes
    # from the prompt text alone (strategies.complete, ByteLevelLM, heal + a cursor).
    from bytepiece.continuation import ByteLevelLM
    from bytepiece.continuation.healing import backoff_of, heal
    from bytepiece.continuation.strategies import complete

    tok = small_tokenizer
    text = (corpus / "beta.txt").read_text(encoding="utf-8")[:4000]
    lm = NGramLM.train(tok.encode((corpus / "train.txt").read_text(encoding="utf-8")), tok.vocab_size, order=3,
                       min_id=3)
    enc = M.encode_text(tok, text, "beta")
    cuts = C.choose_cuts(enc.data, 25, 5, min_after=8)
    prompts = C.build_prompts(tok, enc, cuts)
    blm = ByteLevelLM(tok, lm)
    for strategy in STRATEGIES:
        scores = C.run_strategy(strategy, lm, blm, prompts, enc.data, target_bytes=8)
        for i, b in enumerate(cuts.tolist()):
            prompt, truth = enc.data[:b], enc.data[b : b + 8]
            char = truth[: C.char_length(truth[0])]
            out = complete(tok, lm, prompt, strategy=strategy, max_new_bytes=8, byte_lm=blm).continuation
            assert scores["next_char"][i] == (out[: len(char)] == char)
            assert scores["next_bytes"][i] == (out[:8] == truth)
            if strategy.startswith("exact-"):
                lp = blm.logprob(prompt, char, tokenizations=strategy.removeprefix("exact-"))
            else:
                h = heal(tok, prompt, backoff_of(strategy), index=blm.index)
                cur = blm.cursor(h.kept_ids, h.prefix, constrained=len(h.prefix),
                                 bias=3.0 if strategy == "soft" else None)
                lp = cur.log_mass() + cur.score(char)
            assert scores["logloss_bits"][i] == pytest.approx(-lp / math.log(2), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("order", (2, 3, 4, 5))
def test_harness_short_contexts_against_brute_force(tiny_tokenizer, order):
    """Cuts in the first bytes of a text leave fewer tokens than the LM's window: the harness's
    log-loss of every exact strategy is the brute force's, and every token strategy's is the
    library's (which keeps a short context whole)."""
    from reference import REFERENCES, memo

    from bytepiece.continuation import ByteLevelLM
    from bytepiece.continuation.healing import backoff_of, heal

    tok = tiny_tokenizer
    pieces = {p: i + 3 for i, p in enumerate(tok.pieces())}
    text = "ab cd abcd\nab abc cd ab\n" * 3
    lm = NGramLM.train(tok.encode(text * 5, alpha=0.3, seed=1), tok.vocab_size, order=order, min_id=3)
    prob = memo(lm.prob)
    enc = M.encode_text(tok, text, "t")
    cuts = np.array([1, 2, 3, 5, 6, 8, 11, 13, 15], dtype=np.int64)
    prompts = C.build_prompts(tok, enc, cuts)
    assert {len(tok.encode(enc.data[:b])) for b in cuts.tolist()} >= set(range(1, order + 2))
    blm = ByteLevelLM(tok, lm)
    for strategy in STRATEGIES:
        bits = C.run_strategy(strategy, lm, blm, prompts, enc.data, target_bytes=4)["logloss_bits"]
        for i, b in enumerate(cuts.tolist()):
            prompt, char = enc.data[:b].decode(), enc.data[b : b + 1]
            if strategy.startswith("exact-"):
                p = REFERENCES[strategy.removeprefix("exact-")](tok, prob, pieces, prompt)[char[0]]
                assert bits[i] == pytest.approx(-math.log2(p), rel=1e-9, abs=1e-9), (strategy, prompt)
            else:
                h = heal(tok, prompt, backoff_of(strategy), index=blm.index)
                cur = blm.cursor(h.kept_ids, h.prefix, constrained=len(h.prefix),
                                 bias=3.0 if strategy == "soft" else None)
                lp = cur.log_mass() + cur.score(char)
                assert bits[i] == pytest.approx(-lp / math.log(2), rel=1e-9, abs=1e-9), (strategy, prompt)


def test_runner_validation(corpus):
    base = dict(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt"], vocab_sizes=[300])
    for bad, match in [({"train": [corpus / "missing.txt"]}, "missing.txt does not exist"), ({"vocab_sizes": [], "models": []},
                       "no tokenizer"), ({"alphas": [0.1, -1.0]}, "alphas"), ({"alpha_train": float("nan")}, "alpha_train"),
                       ({"cuts": -1}, "cuts"), ({"vocab_sizes": [100]}, "vocab size"), ({"order": 0}, "order"),
                       ({"strategies": ["naive", "magic"]}, "unknown strategy"), ({"strategies": []}, "strategies"),
                       ({"strategies": ["exact-all", "exact-all"]}, "twice"),
                       ({"strategies": ["exact"]}, "unknown strategy"), ({"generic_cuts": -1}, "generic_cuts"),
                       ({"soft_bias": float("inf")}, "soft_bias")]:
        with pytest.raises(InputError, match=match):
            run_evaluation(EvalConfig(**{**base, **bad}))
    with pytest.raises(InputError, match="every line"):
        run_evaluation(EvalConfig(**{**base, "heldout": [corpus / "train.txt"]}))


def test_report_tables(result):
    from bytepiece.evaluation import report

    tables = report.all_tables(result, width=None)
    titles = [t.title.split(",")[0].split(" (")[0] for t in tables]
    assert titles[:7] == ["Compression of the held-out texts", "Bits per byte of the held-out texts",
                          "Continuation cuts and the share that falls inside a token", "Milliseconds per cut and LM",
                          "Next-character exact match", "Next 8 bytes exact match",
                          "Log-loss of the true next character"]
    for t in tables:
        assert all(len(row) == len(t.headers) for row in t.rows)
    # the accuracy table holds the JSON's numbers, one row per tokenizer and strategy
    acc = tables[4]
    assert len(acc.rows) == len(result["tokenizers"]) * len(STRATEGIES)
    row = next(r for r in acc.rows if r[:2] == ["bnlm-300", "exact-canonical"])
    cell = result["tokenizers"][0]["pooled"]["continuation"]["conditions"]["exact-canonical/sampled"]["mid_token"]["next_char"]
    assert row[acc.headers.index("s:mid")] == f"{100 * cell:.1f}"
    # every part of every table fits 80 columns, key columns repeated; no column is lost
    for t in tables:
        parts = report.fit(t)
        for part in parts:
            assert report.markdown_width(part.headers, part.rows) <= 80 or len(part.headers) == t.keys + 1
            assert part.headers[: t.keys] == t.headers[: t.keys]
        assert sum(len(p.headers) - t.keys for p in parts) == len(t.headers) - t.keys
    md = report.markdown_report(result)
    assert max(len(line) for line in md.splitlines() if line.startswith("|")) <= 80
    generic = next(t for t in tables if t.title.startswith("The exact strategies through the generic LM path"))
    assert len(generic.rows) == 3 * len(result["tokenizers"])
    # next char, next bytes, log-loss, and each part of the generic path's table
    assert md.count("| bnlm-300 | exact-all |") == 3 + len(report.fit(generic))
    gap = next(t for t in tables if t.title.startswith("Each exact strategy"))
    cond = result["tokenizers"][0]["pooled"]["continuation"]["conditions"]
    best = max(cond[f"{h}/det"]["boundary"]["next_char"] for h in ("naive", "healing", "healing-d1", "healing-3", "soft"))
    row = next(r for r in gap.rows if r[:3] == ["bnlm-300", "det", "exact-stable"])
    assert row[gap.headers.index("-best bnd")] == \
        f"{100 * (cond['exact-stable/det']['boundary']['next_char'] - best):+.1f}"
    assert len(report.summary_lines(result)) == 1 + len(result["tokenizers"])


def test_docs_section_is_regenerated(result, tmp_path):
    from bytepiece.evaluation import docsgen, report

    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nintro\n\n{docsgen.START}\nold numbers\n{docsgen.END}\n\nafter\n", encoding="utf-8")
    (tmp_path / "r.json").write_text(json.dumps(result), encoding="utf-8")
    assert docsgen.main([str(tmp_path / "r.json"), "--docs", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\nafter\n") and "old numbers" not in text
    assert "bytepiece eval run --train train.txt --heldout alpha.txt" in text
    assert "/" not in text.split(docsgen.START)[1].split("```text")[1].split("```")[0]  # base names only
    for t in report.all_tables(result):
        assert report.to_markdown(t) in text
    docsgen.main([str(tmp_path / "r.json"), "--docs", str(page)])  # idempotent
    assert page.read_text(encoding="utf-8") == text
    # a named section next to it is rewritten on its own
    start, end = docsgen.markers("other")
    page.write_text(text + f"\n{start}\n{end}\n", encoding="utf-8")
    assert docsgen.main([str(tmp_path / "r.json"), "--docs", str(page), "--section", "other"]) == 0
    both = page.read_text(encoding="utf-8")
    assert both.startswith(text) and both.count("| bnlm-300 | exact-all |") == 2 * text.count("| bnlm-300 | exact-all |")
    page.write_text("no markers\n", encoding="utf-8")
    assert docsgen.main([str(tmp_path / "r.json"), "--docs", str(page)]) == 1


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli():
    from bytepiece_cli.app import app

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})

    return invoke


def _one_line_error(res, code=1):
    """One ``error:`` line; exit status 1 for a failure, 2 for a command line that cannot run."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.output  # progress lines may come before it
    return errors[0]


def test_cli_run(cli, corpus, small_tokenizer, tmp_path):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    res = cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "-m", corpus / "small.model",
              "--cuts", 50, "--alphas", "0.5", "--heldout-bytes", 3000, "--json", out, "--markdown", md,
              "--save-models", tmp_path / "models", "-v", 300)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [t["name"] for t in data["tokenizers"]] == ["bnlm-300", "small"]
    assert data["config"]["cuts"] == 50 and data["config"]["alphas"] == [0.5]
    assert (tmp_path / "models" / "bnlm-300.model").is_file()
    assert "Next-character exact match" in res.output and "healing-d1" in res.output
    assert "| small |" in md.read_text(encoding="utf-8")


def test_cli_strategy_subset(cli, corpus, small_tokenizer, tmp_path):
    from bytepiece.continuation import healing
    from bytepiece_cli import evaluate

    assert evaluate.STRATEGIES == healing.STRATEGIES and evaluate.DEFAULT_SOFT_BIAS == healing.DEFAULT_SOFT_BIAS
    out = tmp_path / "r.json"
    res = cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "-m", corpus / "small.model",
              "--cuts", 30, "--alphas", "0.5", "--heldout-bytes", 3000, "--json", out, "--strategies", "exact-all,soft",
              "--soft-bias", "1.5")
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["config"]["strategies"] == ["exact-all", "soft"] and data["config"]["soft_bias"] == 1.5
    conds = data["tokenizers"][0]["heldout"]["alpha"]["continuation"]["conditions"]
    assert set(conds) == {"exact-all/det", "exact-all/sampled", "soft/det", "soft/sampled"}


def test_cli_run_refined(cli, corpus, tmp_path):
    out = tmp_path / "r.json"
    res = cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "--cuts", 20,
              "--alphas", "0.5", "--heldout-bytes", 3000, "--json", out, "-v", 300, "--refine")
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(out.read_text(encoding="utf-8"))["tokenizers"]
    assert entry["name"] == "refined-300" and entry["trainer_options"]["refine"] is True


def test_cli_errors(cli, corpus, tmp_path):
    train, held = corpus / "train.txt", corpus / "alpha.txt"
    assert "nope.txt does not exist" in _one_line_error(cli("eval", "run", "--train", tmp_path / "nope.txt", "-H", held,
                                                            "-v", 300))
    assert "nope.txt does not exist" in _one_line_error(cli("eval", "run", "--train", train, "-H", tmp_path / "nope.txt",
                                                            "-v", 300))
    loop = tmp_path / "loop"
    loop.symlink_to(loop.name)
    for args in (["run", "--train", train, "-H", loop, "-v", 300], ["compression", "-m", loop, held],
                 ["compression", "-m", train, loop], ["report", loop]):
        assert "symbolic link loop" in _one_line_error(cli("eval", *args))
    assert "directory without a tokenizer.json" in _one_line_error(cli("eval", "compression", "-m", tmp_path, held))
    assert "is a directory" in _one_line_error(cli("eval", "report", tmp_path))
    assert "is a directory" in _one_line_error(cli("eval", "run", "--train", tmp_path, "-H", held, "-v", 300))
    header = tmp_path / "header.json"
    header.write_text('{"format": "bytepiece-eval/1"}')
    assert "incomplete or damaged (no 'heldout')" in _one_line_error(cli("eval", "report", header))
    assert "--alphas" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300, "--alphas", "0.1,x"), 2)
    assert "--alphas" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300, "--alphas", "0.1,-2"),
                                         2)
    assert "no tokenizer" in _one_line_error(cli("eval", "run", "--train", train, "-H", held), 2)
    assert "unknown strategy 'magic'" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300,
                                                             "--strategies", "naive,magic"), 2)
    assert "twice" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300,
                                          "--strategies", "exact-all,exact-all"), 2)
    assert "--vocab-size must be an integer >= 259, got 10" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 10), 2)
    assert "every line" in _one_line_error(cli("eval", "run", "--train", train, "-H", train, "-v", 300, "--cuts", 5))
    assert "x.model does not exist" in _one_line_error(cli("eval", "compression", "-m", tmp_path / "x.model", held))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\x00\x01not a model")
    _one_line_error(cli("eval", "compression", "-m", bad, held))


def test_cli_compression(cli, corpus, small_tokenizer, tmp_path):
    text = corpus / "alpha.txt"
    out = tmp_path / "c.json"
    models = [corpus / "small.model"]
    try:
        import tokenizers  # noqa: F401

        small_tokenizer.to_hf(tmp_path / "hf.json")
        models.append(tmp_path / "hf.json")
    except ImportError:
        pass
    try:
        import sentencepiece  # noqa: F401

        small_tokenizer.to_sentencepiece(tmp_path / "sp.model")
        models.append(tmp_path / "sp.model")
    except ImportError:
        pass
    args = ["eval", "compression", text, corpus / "beta.txt", "--json", out]
    for m in models:
        args += ["-m", m]
    res = cli(*args)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text(encoding="utf-8"))
    rows = {r["kind"]: r for r in data["tokenizers"]}
    content = text.read_text(encoding="utf-8")
    expected = len(small_tokenizer.encode(content))
    assert rows["bytepiece"]["files"]["alpha.txt"]["tokens"] == expected
    assert rows["bytepiece"]["files"]["alpha.txt"]["bytes_per_token"] == pytest.approx(len(content.encode()) / expected)
    if "hf" in rows:  # the byte-level HF export has the same ids, hence the same counts
        assert rows["hf"]["files"]["alpha.txt"]["tokens"] == expected
    if "sentencepiece" in rows:
        assert rows["sentencepiece"]["files"]["alpha.txt"]["tokens"] > 0
    assert "alpha.txt" in res.output and "small" in res.output


def test_compression_report_names_a_column_per_file(corpus, tmp_path):
    from bytepiece.evaluation.adapters import compression_report

    other = tmp_path / "alpha.txt"  # the same name in another folder
    other.write_text("abc\n", encoding="utf-8")
    report = compression_report([corpus / "alpha.txt", other, corpus / "alpha.txt"], [corpus / "small.model"])
    assert [f["name"] for f in report["files"]] == ["alpha.txt", "alpha.txt#2", "alpha.txt#3"]
    [row] = report["tokenizers"]
    assert row["files"]["alpha.txt#2"]["bytes"] == 4
    assert row["files"]["alpha.txt"] == row["files"]["alpha.txt#3"]
    assert row["all"]["tokens"] == sum(f["tokens"] for f in row["files"].values())


def test_cli_plot_without_matplotlib(cli, corpus, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    msg = _one_line_error(cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "-v", 300,
                              "--plot", tmp_path / "p.png"))
    assert "matplotlib" in msg and not (tmp_path / "p.png").exists()


def test_plot(result, tmp_path):
    pytest.importorskip("matplotlib")
    from bytepiece.evaluation import plot

    plot.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_report(cli, result, tmp_path):
    from bytepiece.evaluation import report

    path = tmp_path / "r.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    res = cli("eval", "report", path, "--markdown", tmp_path / "r.md")
    assert res.exit_code == 0, res.output
    assert "bnlm-700" in res.output and "| bnlm-700 |" in (tmp_path / "r.md").read_text(encoding="utf-8")
    # results written before the strategies existed (four conditions, no log-loss, no timing) still render
    import copy

    old = copy.deepcopy(result)
    for t in old["tokenizers"]:
        for cont in [t["pooled"]["continuation"], *(f["continuation"] for f in t["heldout"].values())]:
            cont["conditions"] = {k: v for k, v in cont["conditions"].items() if k in report.CONDITION_LABELS}
            for v in cont["conditions"].values():
                v.pop("seconds_per_cut", None)
                for part in ("all", "boundary", "mid_token"):
                    v[part].pop("logloss_bits", None)
    path.write_text(json.dumps(old), encoding="utf-8")
    res = cli("eval", "report", path)
    assert res.exit_code == 0, res.output
    assert "healing-d1" not in res.output and "Next-character exact match" in res.output
    (tmp_path / "x.json").write_text("[1]", encoding="utf-8")
    assert "not the JSON" in _one_line_error(cli("eval", "report", tmp_path / "x.json"))



def test_plot_labels_each_vocabulary_size_once(result, tmp_path, monkeypatch):
    """Three sizes within one decade made matplotlib label its minor log ticks, which
    overlapped ("3×10³4×10³"): the x axis shows exactly the sizes, in plain digits."""
    pytest.importorskip("matplotlib")
    import copy

    import matplotlib.pyplot as plt

    from bytepiece.evaluation import plot

    res = copy.deepcopy(result)
    first = res["tokenizers"][0]
    res["tokenizers"] = [dict(copy.deepcopy(first), name=f"v{size}", vocab_size=size) for size in (3000, 4000, 8000)]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot.plot(res, tmp_path / "p.png")
    (fig,) = figures
    for ax in fig.axes:
        if ax.get_xscale() != "log":
            continue
        majors = [t.get_text() for t in ax.get_xticklabels()]
        minors = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
        assert majors == ["3,000", "4,000", "8,000"] and minors == []
    plt.close(fig)


def test_the_run_holds_interrupts_out_of_kernel_results_and_restores_handlers(corpus, monkeypatch):
    """run_evaluation runs its kernels on this thread: for its duration the signal handlers are
    the kernel-safe ones (engine.interrupts), and afterwards the caller's again."""
    import signal

    from bytepiece.engine.interrupts import KernelSafeHandler
    from bytepiece.evaluation import runner

    seen = []
    monkeypatch.setattr(runner, "_run", lambda config, say: seen.append(signal.getsignal(signal.SIGINT)) or {})
    before = signal.getsignal(signal.SIGINT)
    config = EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt"], vocab_sizes=[300])
    assert run_evaluation(config) == {}
    assert isinstance(seen[0], KernelSafeHandler) and seen[0].previous is before
    assert signal.getsignal(signal.SIGINT) is before


# -- empty inputs: an error naming the input, never a table of made-up numbers ---------------------
@pytest.mark.parametrize("content", [b"", b"\n\n\r\n"])
@pytest.mark.parametrize("which", ["--train", "--heldout"])
def test_cli_run_refuses_a_text_with_no_text(runner, corpus, small_tokenizer, tmp_path, which, content):
    from bytepiece_cli.app import app

    empty = tmp_path / "empty.txt"
    empty.write_bytes(content)
    train = empty if which == "--train" else corpus / "train.txt"
    held = empty if which == "--heldout" else corpus / "alpha.txt"
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["eval", "run", "--train", str(train), "--heldout", str(held), "-m",
                              str(corpus / "small.model"), "--cuts", "20", "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert res.stderr == f"error: {which} {empty} holds no text; give a file with at least one line of text\n"
    assert res.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("which", ["train", "heldout"])
def test_run_evaluation_refuses_a_text_with_no_text(corpus, small_tokenizer, tmp_path, which):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    config = EvalConfig(train=[empty if which == "train" else corpus / "train.txt"],
                        heldout=[empty if which == "heldout" else corpus / "alpha.txt"],
                        models=[corpus / "small.model"], cuts=20)
    what = "training text" if which == "train" else "held-out text"
    with pytest.raises(InputError, match=f"^{what} {empty} holds no text; give a file with at least one line of text$"):
        run_evaluation(config)


def test_heldout_slice_takes_no_blank_lines_alone(corpus, tmp_path):
    train = (corpus / "train.txt").read_text(encoding="utf-8")
    source = tmp_path / "blank.txt"
    source.write_text("\n\n\n")
    with pytest.raises(InputError, match="holds no text"):
        heldout_slice(source, train)
    # lines with text all seen in training: the blank lines between them are no held-out text either
    seen = tmp_path / "seen.txt"
    seen.write_text("\n\n".join(line for line in train.split("\n")[:50] if len(line) > 30) + "\n\n")
    with pytest.raises(InputError, match="every line"):
        heldout_slice(seen, train)


def test_cli_compression_refuses_an_empty_text(runner, corpus, small_tokenizer, tmp_path):
    from bytepiece_cli.app import app

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "c.json"
    res = runner.invoke(app, ["eval", "compression", str(corpus / "alpha.txt"), str(empty), "-m",
                              str(corpus / "small.model"), "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert res.stderr == f"error: text file {empty} holds no text; give a file with at least one line of text\n"
    assert res.stdout == ""
    assert not out.exists()


def test_compression_rows_refuses_an_empty_text():
    from bytepiece.evaluation.adapters import CountingTokenizer, compression_rows

    counter = CountingTokenizer("t", "bytepiece", 300, lambda docs: sum(len(d) for d in docs))
    with pytest.raises(InputError, match="^empty.txt holds no text; give a text with at least one line$"):
        compression_rows([counter], [("a.txt", "abc\n"), ("empty.txt", "")])
    with pytest.raises(InputError, match="no texts"):
        compression_rows([counter], [])


def test_evaluation_text_is_read_as_every_corpus_input(tmp_path):
    """Audit: the harness read its files raw: a gzip file was refused as not UTF-8, with advice
    to convert it from LATIN1."""
    import gzip

    from bytepiece.evaluation.corpus import read_text

    text = "first line\nsecond, café\n"
    (tmp_path / "t.txt.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    assert read_text(tmp_path / "t.txt.gz") == text
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress((text * 500).encode(), mtime=0)[:60])
    with pytest.raises(InputError, match=r"cut.txt.gz: corrupt or truncated gzip data"):
        read_text(tmp_path / "cut.txt.gz")
    (tmp_path / "noise.txt").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"noise.txt looks binary"):
        read_text(tmp_path / "noise.txt")
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(InputError, match=r"t.jsonl is JSON Lines; a text file must be plain text"):
        read_text(tmp_path / "t.jsonl")


def test_a_tokenizer_json_in_the_working_directory_is_named(tmp_path, monkeypatch, tiny_tokenizer):
    """Audit: ``-m tokenizer.json`` (relative) had an empty name in the table."""
    pytest.importorskip("tokenizers")
    from bytepiece.evaluation.adapters import load_counting_tokenizer
    from bytepiece.interop.hf import export_hf

    folder = tmp_path / "my-hf"
    folder.mkdir()
    export_hf(tiny_tokenizer, folder / "tokenizer.json")
    monkeypatch.chdir(folder)
    assert load_counting_tokenizer("tokenizer.json").name == "my-hf"
    assert load_counting_tokenizer(folder).name == "my-hf"
    # a Hugging Face cache: snapshots/<revision>/tokenizer.json links to blobs/<sha>
    (tmp_path / "blobs").mkdir()
    (folder / "tokenizer.json").rename(tmp_path / "blobs" / "0123abcd")
    snapshot = tmp_path / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "tokenizer.json").symlink_to(tmp_path / "blobs" / "0123abcd")
    assert load_counting_tokenizer(snapshot).name == "rev1"


@given(st.lists(st.integers(2, 40), min_size=1, max_size=12), st.integers(1, 300))  # a line of "\n" alone would join the one before
def test_lm_training_text_is_the_whole_lines_that_fit(line_lengths, cap):
    """``lm_train_bytes``: the LMs train on the longest run of whole lines from the start that
    fits in the cap (the chunk crossing it used to be taken too: 238 bytes for a cap of 1)."""
    from bytepiece.evaluation import runner
    from bytepiece_data import data_file

    tok = Tokenizer(data_file("default.model"))
    text = "".join("x" * (n - 1) + "\n" for n in line_lengths)
    config = runner.EvalConfig(train=[], heldout=[], lm_train_bytes=cap)
    fits = sum(1 for k in range(1, len(line_lengths) + 1) if sum(line_lengths[:k]) <= cap)
    if fits == 0:
        with pytest.raises(InputError, match="first line of the training text"):
            runner._lm_parts(tok, [text], config)
        return
    parts = runner._lm_parts(tok, [text], config)
    assert [len(p) for p in parts] == line_lengths[:fits]


@pytest.mark.parametrize("cut, hint", [(slice(1, None), "starts inside a character"),
                                       (slice(None, -1), "ends inside a character"),
                                       (None, "iconv -f LATIN1")])
def test_a_text_that_is_not_utf8_says_why(tmp_path, cut, hint):
    """A UTF-8 file cut by bytes is told to cut at a line break; other bytes to convert."""
    from bytepiece.evaluation.corpus import read_text

    data = "中文 text\n更多".encode("utf-8")
    data = data[cut] if cut is not None else "café latin-1\n".encode("latin-1")
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    with pytest.raises(InputError, match=hint):
        read_text(path)
