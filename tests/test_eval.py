"""The evaluation harness: building blocks against brute force, the runner's JSON, the CLI.

Texts are synthetic (a seeded pseudo-language of Latin syllables, CJK characters and code-like
lines), written to tmp files; nothing is read from ../shared.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from bytepiece import Tokenizer
from bytepiece.errors import InputError
from bytepiece.evaluation import continuation as C
from bytepiece.evaluation import metrics as M
from bytepiece.evaluation.corpus import MIN_DISTINCTIVE_CHARS, heldout_slice
from bytepiece.evaluation.runner import EvalConfig, _pooled, run_evaluation
from bytepiece.lm import NGramLM

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
    prompts = C.build_prompts(tok, enc, cuts, tail=4)
    full_bounds = set(np.cumsum([len(p) for p in tok.tokenize(text)]).tolist())
    for b, boundary, tail in zip(cuts.tolist(), prompts.is_boundary.tolist(), prompts.tails):
        assert tail == tok.encode(enc.data[:b])[-4:]
        assert boundary == (b in full_bounds)


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

    p = _pooled({"a": file(100, 400, 10, 30, 0.5, 0.1, 800.0), "b": file(300, 600, 30, 10, 0.2, 0.3, 1200.0)})
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
                        heldout_bytes=6000, seed=3, workers=1)
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
            assert set(cont["conditions"]) == {"naive/det", "healing/det", "naive/sampled", "healing/sampled"}
            n_mid = round(cont["mid_token_fraction"] * cont["cuts"])
            for cond in cont["conditions"].values():
                assert cond["boundary"]["n"] + cond["mid_token"]["n"] == cond["all"]["n"] == cont["cuts"]
                assert cond["mid_token"]["n"] == n_mid
                for part in ("all", "boundary", "mid_token"):
                    if cond[part]["n"]:
                        _check_fraction(cond[part]["next_char"])
                        _check_fraction(cond[part]["next_bytes"])
                        assert cond[part]["next_bytes"] <= cond[part]["next_char"]
                        assert 0 <= cond[part]["matched_bytes"] <= 8
            assert [s["alpha"] for s in f["sampling"]] == [0.1, 1.0]
            for s in f["sampling"]:
                _check_fraction(s["changed_fraction"])
                _check_fraction(s["viterbi_kept_fraction"])
                assert s["bytes_per_token"] <= comp["bytes_per_token"] + 1e-9  # Viterbi has the fewest tokens
        pooled = t["pooled"]
        assert pooled["continuation"]["cuts"] == 300
        _check_fraction(pooled["continuation"]["mid_token_fraction"])


def test_runner_cuts_are_paired_and_seeded(result, corpus):
    # bnlm-300 and bnlm-700 see the same cuts (same normalization): the same positions, so their
    # boundary/mid split differs only by tokenization. Re-running one tokenizer gives the same numbers.
    config = EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt", corpus / "beta.txt"],
                        models=[corpus / "small.model"], cuts=150, alphas=[0.1, 1.0], heldout_bytes=6000, seed=3)
    again = run_evaluation(config)
    a = next(t for t in result["tokenizers"] if t["name"] == "small")
    b = again["tokenizers"][0]
    assert a["heldout"] == b["heldout"]
    assert again["heldout"] == result["heldout"]


def test_runner_validation(corpus):
    base = dict(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt"], vocab_sizes=[300])
    for bad, match in [({"train": [corpus / "missing.txt"]}, "no such file"), ({"vocab_sizes": [], "models": []},
                       "no tokenizer"), ({"alphas": [0.1, -1.0]}, "alphas"), ({"alpha_train": float("nan")}, "alpha_train"),
                       ({"cuts": -1}, "cuts"), ({"vocab_sizes": [100]}, "vocab size"), ({"order": 0}, "order")]:
        with pytest.raises(InputError, match=match):
            run_evaluation(EvalConfig(**{**base, **bad}))
    with pytest.raises(InputError, match="every line"):
        run_evaluation(EvalConfig(**{**base, "heldout": [corpus / "train.txt"]}))


def test_report_tables(result):
    from bytepiece.evaluation import report

    tables = report.all_tables(result)
    assert [t.title.split(",")[0].split(" (")[0] for t in tables][:3] == ["Compression of the held-out texts",
                                                                         "Bits per byte of the held-out texts",
                                                                         "Continuation"]
    for t in tables:
        assert all(len(row) == len(t.headers) for row in t.rows)
    md = report.markdown_report(result)
    assert md.count("| bnlm-300 |") >= 5 and "healing, sampled LM" in md
    assert len(report.summary_lines(result)) == 1 + len(result["tokenizers"])


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli():
    from bytepiece_cli.app import app

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})

    return invoke


def _one_line_error(res):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.output  # progress lines may come before it
    return errors[0]


def test_cli_run(cli, corpus, tmp_path):
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
    assert "Continuation" in res.output and "healing, det LM" in res.output
    assert "| small |" in md.read_text(encoding="utf-8")


def test_cli_run_refined(cli, corpus, tmp_path):
    out = tmp_path / "r.json"
    res = cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "--cuts", 20,
              "--alphas", "0.5", "--heldout-bytes", 3000, "--json", out, "-v", 300, "--refine")
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(out.read_text(encoding="utf-8"))["tokenizers"]
    assert entry["name"] == "refined-300" and entry["trainer_options"]["refine"] is True


def test_cli_errors(cli, corpus, tmp_path):
    train, held = corpus / "train.txt", corpus / "alpha.txt"
    assert "no such file" in _one_line_error(cli("eval", "run", "--train", tmp_path / "nope.txt", "-H", held, "-v", 300))
    assert "no such file" in _one_line_error(cli("eval", "run", "--train", train, "-H", tmp_path / "nope.txt", "-v", 300))
    assert "--alphas" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300, "--alphas", "0.1,x"))
    assert "--alphas" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 300, "--alphas", "0.1,-2"))
    assert "no tokenizer" in _one_line_error(cli("eval", "run", "--train", train, "-H", held))
    assert "vocab size" in _one_line_error(cli("eval", "run", "--train", train, "-H", held, "-v", 10))
    assert "every line" in _one_line_error(cli("eval", "run", "--train", train, "-H", train, "-v", 300, "--cuts", 5))
    assert "no such file" in _one_line_error(cli("eval", "compression", "-m", tmp_path / "x.model", held))
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


def test_cli_plot_without_matplotlib(cli, corpus, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    msg = _one_line_error(cli("eval", "run", "--train", corpus / "train.txt", "-H", corpus / "alpha.txt", "-v", 300,
                              "--plot", tmp_path / "p.png"))
    assert "matplotlib" in msg and not (tmp_path / "p.png").exists()


def test_plot(result, tmp_path):
    pytest.importorskip("matplotlib")
    from bytepiece.evaluation import report

    report.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_report(cli, result, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    res = cli("eval", "report", path, "--markdown", tmp_path / "r.md")
    assert res.exit_code == 0, res.output
    assert "bnlm-700" in res.output and "| bnlm-700 |" in (tmp_path / "r.md").read_text(encoding="utf-8")
    (tmp_path / "x.json").write_text("[1]", encoding="utf-8")
    assert "not the JSON" in _one_line_error(cli("eval", "report", tmp_path / "x.json"))
