"""The transformer LM (the ``lm`` extra): its KV cache against whole recomputation, document
scores against one-history queries, exact byte-level continuation against brute force,
reproducible training, the missing-extra error, and the harness end to end with ``--lm
transformer`` on a tiny configuration (CI installs the extra, so these run there)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bytepiece.errors import InputError

from test_continuation import brute_next
from test_eval import cli, corpus, small_tokenizer  # noqa: F401 - fixtures

torch = pytest.importorskip("torch")

from bytepiece.continuation import ByteLevelLM  # noqa: E402
from bytepiece.continuation.neural import TransformerConfig, TransformerLM  # noqa: E402
from bytepiece.continuation.transformer import TinyTransformer, count_ngram_keys  # noqa: E402


def tiny_lm(vocab_size: int, *, context: int = 9, seed: int = 0, min_id: int = 3, head: int = 0, shuffle: bool = False,
            ngrams: int = 0, **kw) -> TransformerLM:
    """A random model; ``head``: an adaptive softmax with that first cluster; ``shuffle``: the
    model numbers the ids in a random order (as a trained LM numbers them by frequency);
    ``ngrams``: n-gram tables over the n-grams seen twice in a random stream of the ids the tests
    draw (a small alphabet, so that histories hit them), with random rows."""
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(vocab_size) if shuffle else None
    keys = []
    if ngrams:
        number = np.argsort(order) if shuffle else np.arange(vocab_size)  # id -> the model's number
        keys = count_ngram_keys(number[np.random.default_rng(seed + 100).integers(3, 12, size=20_000)], ngrams,
                                vocab_size + 2, 2)
    model = TinyTransformer(vocab_size + 1, layers=2, width=16, heads=2, context=context, head=head, ngram_keys=keys)
    for p in model.parameters():  # sharper than the initialisation, so histories differ visibly
        p.data.mul_(8.0) if p.dim() == 2 else None
    for table in model.ngrams:
        torch.nn.init.normal_(table.weight, std=1.0)
    return TransformerLM(model, vocab_size=vocab_size, min_id=min_id, order=order, **kw)


def whole(lm: TransformerLM, history) -> np.ndarray:
    """The next-token log-probabilities of a history computed from nothing (no cache), by brute
    force where the model has clusters: each id's probability is its cluster's times its own
    within the cluster, written out one id at a time."""
    window = list(history[lm.start(len(history)):])
    number = {int(t): n for n, t in enumerate(lm.order)}
    ids = torch.tensor([[lm.bos_id, *(number[t] for t in window)]])
    m = lm.model
    with torch.no_grad():
        h = m(ids)[0][0, -1].double()
        first = h @ m.embed.weight.double().T
        if len(m.tails):
            first = torch.cat([first, h @ m.cluster.double().T])
        first = torch.log_softmax(first, dim=-1)
        by_number = list(first[: m.bounds[1]])
        for k, (table, proj) in enumerate(zip(m.tails, m.tail_proj)):
            inner = torch.log_softmax((h @ proj.weight.double()) @ table.weight.double().T, dim=-1)
            by_number += [first[m.bounds[1] + k] + v for v in inner]
    x = torch.tensor([float(by_number[number[t]]) for t in range(lm.vocab_size)], dtype=torch.float64)
    x[: lm.min_id] = -float("inf")
    return torch.log_softmax(x, dim=-1).numpy()


#: a full softmax; an adaptive one (clusters 0-7, 8-31, 32-40 of the 41 numbers) over ids in a random order;
#: the adaptive one with n-gram tables of 2-, 3- and 4-grams (the ids below draw from a small alphabet to hit them)
SOFTMAXES = pytest.mark.parametrize("softmax", [{}, {"head": 8, "shuffle": True},
                                                {"head": 8, "shuffle": True, "ngrams": 3}],
                                    ids=["full", "adaptive", "ngrams"])


@SOFTMAXES
def test_kv_cache_equals_recomputation(softmax):
    lm = tiny_lm(40, context=9, **softmax)  # a window of 8 tokens, read from multiples of 4
    rng = np.random.default_rng(0)
    base = rng.integers(3, 12, size=20).tolist()
    histories = [base[:n] for n in range(len(base) + 1)]
    for n in range(len(base) + 1):  # grown one token at a time, plus siblings of different lengths in one batch
        batch = [histories[n], base[: max(n - 3, 0)] + [5], histories[n][:-1] + [7] if n else [9]]
        rows = lm.next_token_logprobs_batch(batch)
        for h, row in zip(batch, rows):
            np.testing.assert_allclose(row, whole(lm, h), atol=2e-5)  # float32: summation order differs
        np.testing.assert_allclose(lm.next_token_probs_batch(batch), np.exp(rows), rtol=1e-14, atol=0)
    assert lm.passes < 3 * (len(base) + 1)  # one pass for the extended rows, one for the rest
    assert lm.start(8) == 0 and lm.start(9) == 4 and lm.start(12) == 4 and lm.start(13) == 8


@SOFTMAXES
def test_document_scores_equal_history_queries(softmax):
    lm = tiny_lm(30, context=7, **softmax)
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 12, size=41)
    offsets = [0, 17, 17, 41]
    got = lm.token_logprobs(ids, offsets)
    want = [whole(lm, ids[a:i])[ids[i]] for a, b in zip(offsets[:-1], offsets[1:]) for i in range(a, b)]
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert lm.bits(ids, offsets) == pytest.approx(-sum(want) / np.log(2), rel=1e-5)


@SOFTMAXES
def test_exact_continuation_matches_brute_force(tiny_tokenizer, softmax):
    tok = tiny_tokenizer
    pieces = {p: i + 3 for i, p in enumerate(tok.pieces())}
    lm = tiny_lm(tok.vocab_size, context=6, **softmax)  # histories below cross the read start (window 5, stride 2)
    blm = ByteLevelLM(tok, lm)
    cache: dict = {}

    def prob(ctx, t):
        key = tuple(ctx)
        if key not in cache:
            cache[key] = np.exp(whole(lm, list(ctx)))
        return float(cache[key][t])

    for ctx, r in (([7], b""), ([7, 8, 9], b"ab"), ([7], b"abc"), ([], b"\xe4\xb8")):
        M = brute_next(prob, pieces, ctx, r)
        cur = blm.cursor(ctx, r)
        assert cur.exact
        np.testing.assert_allclose(cur.probs(), M / M.sum(), rtol=1e-4, atol=1e-9)
    for tokenizations in ("all", "stable", "canonical"):
        p = blm.next_byte_probs("abc ab", tokenizations=tokenizations)
        assert p.sum() == pytest.approx(1.0)


class Windows:
    """Token data in memory with TokenDataset's training interface."""

    def __init__(self, ids):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.n_tokens = len(self.ids)

    def tokens(self, start, stop):
        return self.ids[start:stop]

    def windows(self, batch_size, length, *, seed=None):
        starts = seed.integers(0, self.n_tokens - length, size=batch_size)
        block = np.stack([self.ids[s: s + length + 1] for s in starts])
        return block[:, :-1], block[:, 1:]

    def epoch_windows(self, batch_size, length, *, seed=None):
        starts = seed.permutation(np.arange(0, self.n_tokens - length, length))
        for lo in range(0, len(starts) - batch_size + 1, batch_size):
            block = np.stack([self.ids[s: s + length + 1] for s in starts[lo: lo + batch_size]])
            yield block[:, :-1], block[:, 1:]


def test_adaptive_softmax_is_a_distribution():
    from bytepiece.continuation.transformer import cluster_bounds

    assert cluster_bounds(100, 0) == [0, 100] and cluster_bounds(100, 100) == [0, 100]
    assert cluster_bounds(100, 5) == [0, 5, 20, 80, 100] and cluster_bounds(81, 5) == [0, 5, 20, 80, 81]
    torch.manual_seed(4)
    model = TinyTransformer(100, layers=1, width=32, heads=2, context=8, head=5)
    assert [t.embedding_dim for t in model.tails] == [8, 8, 8]  # 32 / 4, then the floor of 8
    with torch.no_grad():
        h, _ = model(torch.randint(0, 100, (3, 8)))
        lp = model.log_probs(h)
        assert lp.shape == (3, 8, 100)
        np.testing.assert_allclose(torch.logsumexp(lp.double(), -1).numpy(), 0, atol=1e-5)
        targets = torch.randint(0, 100, (24,))
        np.testing.assert_allclose(model.target_log_probs(h.reshape(24, 32), targets).numpy(),
                                   lp.reshape(24, 100).gather(-1, targets[:, None]).squeeze(-1).numpy(), atol=1e-5)


@pytest.mark.parametrize("min_count", [1, 2, 3])
def test_ngram_rows_against_counting(min_count):
    """Each position's row in the n-gram table: nonzero exactly where the n-gram ending there
    occurs ``min_count`` times in the training stream (never across BOS or the pad before it),
    one row per distinct n-gram; a history extended with ``prev`` gets the rows of the whole."""
    from collections import Counter

    rng = np.random.default_rng(min_count)
    stream = rng.integers(0, 5, size=500)  # model numbers 0-4; 5 is BOS, 6 the pad
    keys = count_ngram_keys(stream, 3, 7, min_count)
    model = TinyTransformer(6, layers=1, width=8, heads=2, context=24, ngram_keys=keys)
    assert model.ngram_context == 3 and [t.num_embeddings for t in model.ngrams] == [len(k) + 1 for k in keys]
    counts = Counter(tuple(stream[i - n + 1: i + 1].tolist()) for n in (2, 3, 4) for i in range(n - 1, len(stream)))
    window = np.concatenate([[5], rng.integers(0, 5, size=20)])
    rows = model.ngram_rows(torch.tensor(window[None]))
    named: dict = {}
    for k, row in enumerate(rows):
        n = k + 2
        for i in range(len(window)):
            gram = tuple(window[i - n + 1: i + 1].tolist()) if i >= n - 1 else None
            has = gram is not None and 5 not in gram and counts[gram] >= min_count
            assert (int(row[0, i]) > 0) == has, (n, i, gram)
            if has:
                assert named.setdefault((n, int(row[0, i])), gram) == gram
        assert len({g for (m, _), g in named.items() if m == n}) == len({r for m, r in named if m == n})
    tail = model.ngram_rows(torch.tensor(window[None, 12:]), prev=torch.tensor(window[None, 9:12]))
    for whole_row, part in zip(rows, tail):
        assert torch.equal(whole_row[:, 12:], part)


def test_ids_are_numbered_by_frequency():
    from bytepiece.continuation.neural import frequency_order

    data = Windows([4, 1, 4, 2, 4, 1] * 5)
    assert frequency_order(data, 6, chunk=7).tolist() == [4, 1, 2, 0, 3, 5]  # unseen ids last, by id
    with pytest.raises(InputError, match="outside 0..3"):
        frequency_order(data, 4)


@pytest.mark.parametrize("softmax_head", [0, 8])
def test_training_is_seeded(softmax_head):
    data = Windows(np.random.default_rng(2).integers(3, 50, size=3000))
    config = TransformerConfig(layers=1, width=16, heads=2, context=16, train_bytes=2, epochs=2, batch_size=4,
                               threads=1, softmax_head=softmax_head, ngrams=2)

    def run(seed):
        lm, info = TransformerLM.train(TransformerConfig(**{**config.as_dict(), "seed": seed}), 50, lambda e: data,
                                       min_id=3)
        return lm, info

    (a, ia), (b, _), (c, _) = run(0), run(0), run(1)
    assert ia["steps"] == 2 * (2999 // 15 // 4) and ia["loss_curve"][-1][1] < ia["loss_curve"][0][1]
    assert ia["clusters"] == ([0, 51] if softmax_head == 0 else [0, 8, 32, 51])
    for (name, p), q, r in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                               c.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, r) for p, r in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    probe = [5, 6, 7]
    np.testing.assert_array_equal(a.next_token_logprobs(probe), b.next_token_logprobs(probe))


def test_training_on_set_threads_leaves_the_callers_torch_threads_as_they_were():
    data = Windows(np.random.default_rng(2).integers(3, 50, size=400))
    config = TransformerConfig(layers=1, width=16, heads=2, context=16, train_bytes=2, batch_size=4, threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        _, info = TransformerLM.train(config, 50, lambda e: data, min_id=3,
                                      on_step=lambda step, loss: seen.append(torch.get_num_threads()))
        assert set(seen) == {1} and info["threads"] == 1  # trained on the configured thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bad_configuration_and_device():
    with pytest.raises(InputError, match="heads of an even width"):
        TransformerConfig(width=15, heads=5).validate()
    with pytest.raises(InputError, match="train_bytes"):
        TransformerConfig(train_bytes=0).validate()
    with pytest.raises(InputError, match="softmax_head must be 0"):
        TransformerConfig(softmax_head=-1).validate()
    with pytest.raises(InputError, match="ngrams must be an integer >= 0"):
        TransformerConfig(ngrams=-1).validate()
    with pytest.raises(InputError, match="ngram_min_count must be an integer >= 1"):
        TransformerConfig(ngram_min_count=0).validate()
    with pytest.raises(InputError, match="ngram_lr must be a positive number"):
        TransformerConfig(ngram_lr=float("nan")).validate()
    with pytest.raises(InputError, match="device"):
        TransformerLM.train(TransformerConfig(device="nosuchdevice"), 50, lambda e: None)


def test_missing_torch_is_one_error_naming_the_extra(monkeypatch, corpus):  # noqa: F811
    from bytepiece.continuation import neural
    from bytepiece.evaluation.runner import EvalConfig

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InputError, match=r"bytepiece-tk\[lm\]"):
        neural.require_torch()
    config = EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt"], vocab_sizes=[300],
                        lms=["kn", "transformer"])
    with pytest.raises(InputError, match=r"install the lm extra"):  # before any work
        config.validate()


TINY = {"layers": 1, "width": 16, "heads": 2, "context": 16, "train_bytes": 20_000, "epochs": 2, "threads": 1}


def _neural_config(corpus, **kwargs):  # noqa: F811
    """Two tokenizers: one from a model file, one trained in the run (pickled whole)."""
    from bytepiece.evaluation.runner import EvalConfig

    return EvalConfig(train=[corpus / "train.txt"], heldout=[corpus / "alpha.txt", corpus / "beta.txt"],
                      models=[corpus / "small.model"], vocab_sizes=[300], cuts=12, alphas=[0.1], heldout_bytes=3000,
                      seed=3, workers=1, generic_cuts=0, lms=["kn", "transformer"], transformer=TINY,
                      transformer_cuts=5, **kwargs)


_PROGRESS: list[str] = []


@pytest.fixture(scope="module")
def neural_result(corpus, small_tokenizer):  # noqa: F811
    """The transformers in two worker processes, beside the KN work."""
    from bytepiece.evaluation.runner import run_evaluation

    return run_evaluation(_neural_config(corpus, transformer_processes=2), on_progress=_PROGRESS.append)


def test_transformers_in_worker_processes_give_the_numbers_they_give_here(neural_result, corpus):  # noqa: F811
    """One thread each way, so every number is the same: the jobs carry all they need, and their
    results go back to their tokenizer, file and LM."""
    from bytepiece.evaluation.docsgen import command_line
    from bytepiece.evaluation.runner import run_evaluation

    assert "transformers: 4 to train and score, 2 at once in worker processes" in [m.strip() for m in _PROGRESS]
    here = run_evaluation(_neural_config(corpus, transformer_processes=1))
    assert [t["name"] for t in neural_result["tokenizers"]] == [t["name"] for t in here["tokenizers"]] == \
        ["bnlm-300", "small"]
    for a, b in zip(neural_result["tokenizers"], here["tokenizers"]):
        assert _without_seconds(a["heldout"]) == _without_seconds(b["heldout"])
        assert _without_seconds(a["pooled"]) == _without_seconds(b["pooled"])
        assert _without_seconds(a["lm"]) == _without_seconds(b["lm"])
        assert list(a["lm"]) == ["det", "sampled", "transformer-det", "transformer-sampled"]
        assert list(a["heldout"]["alpha"]["continuation"]["conditions"]) == \
            list(b["heldout"]["alpha"]["continuation"]["conditions"])
        assert a["lm"]["transformer-det"]["segmentation"] == "viterbi" and a["lm"]["transformer-det"]["alpha"] is None
        assert a["lm"]["transformer-sampled"]["segmentation"] == "sampled"
        assert a["lm"]["transformer-sampled"]["alpha"] == 0.1
        assert a["lm"]["transformer-det"]["threads"] == 1
    # the two tokenizers' numbers differ: nothing went to the wrong one
    bpb = [t["pooled"]["bits_per_byte"]["transformer-det"]["bits_per_byte"] for t in here["tokenizers"]]
    assert bpb[0] != bpb[1]
    assert neural_result["config"]["transformer_processes"] == 2
    assert "--transformer-processes 2" in command_line(neural_result)
    assert "--transformer-processes 1" in command_line(here)


def _without_seconds(value):
    """``value`` less its timings (which differ from run to run)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items()
                if not (k.endswith("_s") or k in ("seconds", "seconds_per_cut"))}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def test_eval_run_with_transformer(neural_result, small_tokenizer):  # noqa: F811
    t = neural_result["tokenizers"][0]
    for name in ("transformer-det", "transformer-sampled"):
        info = t["lm"][name]
        assert info["train_bytes"] <= 20_000 and info["steps"] > 0 and info["parameters"] > 0
        assert info["tokens_per_epoch"] > 0
        for f in ("alpha", "beta"):
            bpb = t["heldout"][f]["bits_per_byte"][name]
            assert bpb["tokens"] == t["heldout"][f]["bits_per_byte"]["det"]["tokens"]
            assert 0 < bpb["bits_per_byte"] < 20
        assert t["pooled"]["bits_per_byte"][name]["bits_per_byte"] > 0
        for strategy in ("naive", "healing", "soft", "exact-stable"):
            cell = t["pooled"]["continuation"]["conditions"][f"{strategy}/{name}"]
            assert cell["all"]["n"] == 10  # 5 of the 12 cuts in each file
            assert 0 <= cell["all"]["next_char"] <= 1 and cell["all"]["logloss_bits"] > 0
        assert f"exact-all/{name}" not in t["pooled"]["continuation"]["conditions"]
        assert f"exact-canonical/{name}" not in t["pooled"]["continuation"]["conditions"]
    assert t["pooled"]["continuation"]["conditions"]["naive/det"]["all"]["n"] == 24
    assert neural_result["config"]["transformer"]["layers"] == 1
    assert neural_result["config"]["lms"] == ["kn", "transformer"]
    json.dumps(neural_result)


def test_report_shows_both_lms(neural_result, tmp_path):
    from bytepiece.evaluation import report

    md = report.markdown_report(neural_result)
    assert "transformer" in md and "KN" in md
    assert "td:all" in md or "td:" in md
    pytest.importorskip("matplotlib")
    from bytepiece.evaluation import plot

    plot.plot(neural_result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_lm_option(cli, corpus, small_tokenizer, tmp_path):  # noqa: F811
    out = tmp_path / "r.json"
    args = ["eval", "run", "--train", str(corpus / "train.txt"), "--heldout", str(corpus / "alpha.txt"),
            "-m", str(corpus / "small.model"), "--cuts", "4", "--heldout-bytes", "2000", "--alphas", "0.1",
            "--generic-cuts", "0", "--lm", "transformer", "--transformer-layers", "1",
            "--transformer-width", "16", "--transformer-heads", "2", "--transformer-context", "16",
            "--transformer-train-bytes", "8000", "--transformer-cuts", "2", "--json", str(out)]
    r = cli(*args)  # --lm transformer alone, as README writes it: kn always runs
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert "transformer-det" in res["tokenizers"][0]["pooled"]["bits_per_byte"]
    bad = cli(*args[:-2], "--lm", "gpt")
    assert bad.exit_code == 2 and "unknown LM 'gpt'" in bad.output


def test_lm_options_are_checked(corpus):  # noqa: F811
    from bytepiece.evaluation.runner import EvalConfig

    base = {"train": [corpus / "train.txt"], "heldout": [corpus / "alpha.txt"], "vocab_sizes": [300]}
    for lms, options, message in ((["transformer"], {}, "always runs the kn LM"), (["kn", "kn"], {}, "twice"),
                                  (["kn", "gpt"], {}, "unknown LM 'gpt'"),
                                  (["kn", "transformer"], {"depth": 3}, "transformer options"),
                                  (["kn", "transformer"], {"heads": 0}, "heads must be a positive integer")):
        with pytest.raises(InputError, match=message):
            EvalConfig(**base, lms=lms, transformer=options).validate()
    EvalConfig(**base, lms=["kn"], transformer={"depth": 3}).validate()  # unused without --lm transformer
    from bytepiece.evaluation.runner import run_evaluation

    kn_only = run_evaluation(EvalConfig(train=base["train"], heldout=base["heldout"], models=[corpus / "small.model"],
                                        cuts=2, alphas=[0.1], heldout_bytes=2000, generic_cuts=0, lms=["kn"],
                                        transformer={"depth": 3}))  # and not read in the run either
    assert list(kn_only["tokenizers"][0]["lm"]) == ["det", "sampled"]
    cfg = EvalConfig(**base, lms=["kn", "transformer"], transformer={"layers": 3}, seed=7)
    assert cfg.as_dict()["transformer"] == {**TransformerConfig(layers=3, seed=7).as_dict()}


def test_cli_defaults_are_the_library_defaults():
    import inspect

    from bytepiece.evaluation import docsgen
    from bytepiece.evaluation.neural import DEFAULT_TRANSFORMER_CUTS, DEFAULT_TRANSFORMER_MAX_STATES
    from bytepiece_cli.evaluate import run

    given = {k: p.default for k, p in inspect.signature(run).parameters.items()}
    cfg = TransformerConfig()
    for k in ("layers", "width", "heads", "context", "train_bytes", "epochs", "softmax_head", "ngrams"):
        assert given[f"transformer_{k}"] == getattr(cfg, k) == docsgen._TRANSFORMER_DEFAULTS[k], k
    assert given["transformer_cuts"] == DEFAULT_TRANSFORMER_CUTS
    assert given["transformer_max_states"] == DEFAULT_TRANSFORMER_MAX_STATES
    assert given["device"] == cfg.device
    assert given["transformer_processes"] is None


def _session_alive(session: int) -> list[str]:
    """Live processes (not zombies) of a session."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split() if stat else []
        if fields and int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry.name} {fields[0]}")
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, reads /proc")
def test_ctrl_c_while_the_transformers_train_is_one_line_and_leaves_nothing(corpus, small_tokenizer, tmp_path):  # noqa: F811
    """A terminal's Ctrl-C reaches the command and its worker processes: one line, exit 130, no
    worker left running and no token shard left in the temporary directory."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = ["eval", "run", "--train", str(corpus / "train.txt"), "--heldout", str(corpus / "alpha.txt"),
            "-m", str(corpus / "small.model"), "--cuts", "4", "--heldout-bytes", "2000", "--alphas", "0.1",
            "--generic-cuts", "0", "--lm", "kn", "--lm", "transformer", "--transformer-layers", "1",
            "--transformer-width", "16", "--transformer-heads", "2", "--transformer-context", "16",
            "--transformer-train-bytes", "5000000", "--transformer-epochs", "100", "--transformer-processes", "2",
            "--json", str(tmp_path / "r.json")]
    proc = subprocess.Popen([sys.executable, "-m", "bytepiece", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(temp), "COLUMNS": "200", "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 120
        while not list(temp.glob("bytepiece-jobs-*/bytepiece-lm-*")):  # a worker is encoding or training
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
    assert "Traceback" not in err and err.count("error:") == 1, err
    deadline = time.monotonic() + 15
    while _session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _session_alive(proc.pid)
    assert list(temp.iterdir()) == [] and not (tmp_path / "r.json").exists()
