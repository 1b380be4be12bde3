"""The start of a process: plain-Python Viterbi until numba pays off, and no numba import for a
one-line job once the model's arrays are cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bytepiece.tokenizer.coldstart as coldstart_module
from bytepiece import Tokenizer
from bytepiece.options import kernel_seed
from bytepiece.tokenizer.coldstart import PYTHON_BUDGET_BYTES, viterbi_ids
from reference import piece_scores, viterbi

ALPHABET = b"ab\n\xe4 "
pieces = st.dictionaries(
    st.binary(min_size=2, max_size=7).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)),
    st.integers(1, 60),
    max_size=30,
)
texts = st.binary(max_size=80).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))


def _vocab(extra: dict[bytes, int]) -> dict[bytes, int]:
    counts = {bytes([b]): 1 + b % 5 for b in range(256)}
    counts.update(extra)
    return counts


@given(pieces, texts)
def test_python_viterbi_equals_kernel_and_reference(extra, text):
    counts = _vocab(extra)
    tokenizer = Tokenizer.from_counts(counts, normalization="none")
    python = viterbi_ids(*tokenizer.segmenter.coldstart_views, text)
    kernel = tokenizer.segmenter.segment_array(text).tolist()
    assert python == kernel
    assert [tokenizer.id_to_piece(i) for i in python] == viterbi(piece_scores(counts), text)


def test_python_viterbi_on_real_text(load_shared_tokenizer, shared):
    tokenizer = load_shared_tokenizer("bytepiece_80k")
    for name in ("zh", "en", "code"):
        data = (shared / "corpora" / f"{name}.txt").read_bytes()[:20_000]
        data = data.decode("utf-8", "ignore").encode()
        assert viterbi_ids(*tokenizer.segmenter.coldstart_views, data) == tokenizer.segmenter.segment_array(data).tolist()


def test_budget_then_kernels(monkeypatch, tiny_tokenizer):
    """Small inputs go to Python while the budget lasts; the first input that does not fit
    loads the kernels, which are then used for everything."""
    monkeypatch.setattr(coldstart_module, "kernel_module", None)
    monkeypatch.setattr(coldstart_module, "python_budget", PYTHON_BUDGET_BYTES)
    text = "abcd 中文 ab\n\n" * 50
    expected = tiny_tokenizer.segmenter.segment_array(tiny_tokenizer.normalize(text)).tolist()
    monkeypatch.setattr(coldstart_module, "kernel_module", None)
    assert tiny_tokenizer.encode(text) == expected
    assert tiny_tokenizer.encode_batch([text, "", text], add_bos=True) == [[1, *expected], [1], [1, *expected]]
    flat, offsets = tiny_tokenizer.encode_batch([text, text], return_flat=True, add_eos=True)
    assert flat.dtype == np.int32 and offsets.dtype == np.int64 and offsets.tolist() == [0, len(expected) + 1, 2 * len(expected) + 2]
    assert coldstart_module.kernel_module is None
    assert coldstart_module.python_budget < PYTHON_BUDGET_BYTES
    left = coldstart_module.python_budget
    assert coldstart_module.python_encodes(left) and not coldstart_module.python_encodes(left + 1)
    assert coldstart_module.python_budget == left  # asking takes nothing off the budget
    big = text * (PYTHON_BUDGET_BYTES // len(text.encode()) + 1)
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(big)) == big
    assert coldstart_module.kernel_module is not None
    assert not coldstart_module.python_encodes(1)


@settings(max_examples=60, deadline=None)
@given(pieces, st.lists(texts, min_size=1, max_size=4), st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]),
       st.integers(0, 2**64 - 1), st.integers(0, 50), st.booleans())
def test_python_sampling_draws_what_the_kernels_draw(extra, docs, alpha, seed, doc_base, marks):
    """The same ids for the same seed whichever side samples: documents of several chunks,
    several documents (each its own stream), ``<bos>``/``<eos>`` around them."""
    tokenizer = Tokenizer.from_counts(_vocab(extra), normalization="none")
    core = tokenizer.segmenter
    assert core.has_python_path(alpha)
    data = b"".join(docs)
    bounds = np.zeros(len(docs) + 1, np.int64)
    np.cumsum([len(d) for d in docs], out=bounds[1:])
    bos, eos = (1, 2) if marks else (-1, -1)
    python = core.python_documents(data, bounds.tolist(), list(range(len(docs) + 1)), None, bos, eos, alpha,
                                   np.uint64(seed), doc_base)
    kernel = core.segment_documents(np.frombuffer(data, np.uint8), bounds, alpha=alpha, seed=np.uint64(seed),
                                    doc_base=doc_base, bos=bos, eos=eos)
    assert python[0].tolist() == kernel[0].tolist() and python[1].tolist() == kernel[1].tolist()


def test_python_sampling_on_real_text_rescales_as_the_kernels_do(load_shared_tokenizer, shared):
    """Long chunks of real text: the totals leave [1e-100, 1e100] and are rescaled many times."""
    tokenizer = load_shared_tokenizer("bytepiece_80k")
    core = tokenizer.segmenter
    for name in ("zh", "en", "code"):
        data = (shared / "corpora" / f"{name}.txt").read_bytes()[:6_000].replace(b"\n", b" ")
        data = data.decode("utf-8", "ignore").encode()
        for alpha in (0.1, 1.0):
            kernel = core.segment_array(data, alpha, np.uint64(7)).tolist()
            python, _ = coldstart_module.sample_ids(*core.coldstart_views[:3], core.tables(alpha).values.data,
                                                    core.max_piece_length, data, coldstart_module.seed_state(7, 0))
            assert python == kernel


def test_sampling_takes_the_python_path_except_in_the_log_domain(monkeypatch, tiny_tokenizer):
    """A one-line ``--sample`` loads no kernels; an alpha so large that the weights underflow
    (the log-domain sampler) always does."""
    monkeypatch.setattr(coldstart_module, "kernel_module", None)
    monkeypatch.setattr(coldstart_module, "python_budget", PYTHON_BUDGET_BYTES)
    text = "abcd 中文 ab\n\nxy"
    python = tiny_tokenizer.encode(text, alpha=0.5, seed=1)
    batch = tiny_tokenizer.encode_batch([text, text], alpha=0.5, seed=1, add_eos=True)
    assert coldstart_module.kernel_module is None
    assert batch[0] == python + [2] and batch[1][-1] == 2
    assert tiny_tokenizer.segmenter.segment_array(tiny_tokenizer.normalize(text), 0.5, kernel_seed(1)).tolist() == python
    monkeypatch.setattr(coldstart_module, "kernel_module", None)
    assert not tiny_tokenizer.segmenter.has_python_path(1e6)
    tiny_tokenizer.encode(text, alpha=1e6, seed=1)
    assert coldstart_module.kernel_module is not None


def _run(code: str, env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture()
def cold_env(tmp_path, tiny_model_file):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYTEPIECE_")}
    env["BYTEPIECE_CACHE_DIR"] = str(tmp_path / "cache")
    # a first process fills the cache
    _run(f"from bytepiece import Tokenizer; Tokenizer({str(tiny_model_file)!r})", env)
    return env


@pytest.mark.slow
def test_one_line_does_not_import_numba(cold_env, tiny_model_file, tiny_tokenizer):
    code = f"""
        import json, sys
        from bytepiece import Tokenizer
        t = Tokenizer({str(tiny_model_file)!r})
        out = [t.encode("abcd 中文 ab"), t.encode_batch(["ab", "cd"]), t.decode(t.encode("x y")), "numba" in sys.modules]
        print(json.dumps(out))
    """
    ids, batch, text, numba_loaded = json.loads(_run(code, cold_env).stdout)
    assert ids == tiny_tokenizer.encode("abcd 中文 ab")
    assert batch == tiny_tokenizer.encode_batch(["ab", "cd"])
    assert text == "x y"
    assert numba_loaded is False


@pytest.mark.slow
def test_cli_one_line_does_not_import_numba(cold_env, tiny_model_file, tiny_tokenizer):
    code = f"""
        import sys
        from bytepiece_cli.app import main
        sys.argv = ["bytepiece", "encode", "-m", {str(tiny_model_file)!r}]
        try:
            main()
        except SystemExit as e:
            assert not e.code, e.code
        print("numba" in sys.modules, file=sys.stderr)
    """
    done = _run(code, cold_env, stdin="abcd 中文 ab\nabc\n")
    assert done.stdout.splitlines() == [" ".join(map(str, tiny_tokenizer.encode(t))) for t in ("abcd 中文 ab", "abc")]
    assert done.stderr.strip().splitlines()[-1] == "False"


def test_warmup_loads_the_kernels_for_every_later_call(monkeypatch, tiny_tokenizer):
    monkeypatch.setattr(coldstart_module, "kernel_module", None)
    monkeypatch.setattr(coldstart_module, "python_budget", PYTHON_BUDGET_BYTES)
    tiny_tokenizer.warmup()
    assert coldstart_module.kernel_module is not None
    tiny_tokenizer.encode("abcd")
    assert coldstart_module.python_budget == PYTHON_BUDGET_BYTES, "nothing went to the Python path"
