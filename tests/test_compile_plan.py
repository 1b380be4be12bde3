"""What a first run compiles: every kernel once, for the argument types the product passes.

Compiling is most of a first run's time (README's training command), so a fresh process, with
an empty numba cache, loads a model, samples one line (plain Python: nothing to compile), runs
the training warm-up (both passes and pruning on a sample, text and JSON Lines), and encodes and
samples a batch, while a listener records every compilation. The test fails when a kernel is compiled twice (a constant
argument is a ``Literal`` type and compiles one more specialization; a read-only and a writable
array are two) or when a kernel uses an array slice assignment (numba then compiles its shape
check, whose error text alone costs 1.5-2 s of CPU). README's training job, on a small corpus,
compiles the BNLM segmentation alone. On a terminal, the compile shows as a status line with a
clock.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from collections import defaultdict

import pytest

SCRIPT = r"""
import json, sys
from numba.core import event

records = []

class Listener(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        data = ev.data or {}
        func = getattr(data.get("dispatcher"), "py_func", None)
        records.append([f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}", str(data.get("args"))])

event.register("numba:compile", Listener())

from bytepiece import Tokenizer
from bytepiece.training.warmup import warm_up_here
from bytepiece_data import DEFAULT_MODEL, data_file

tok = Tokenizer(data_file(DEFAULT_MODEL))
tok.encode("hi", alpha=0.1)
warm_up_here(("text", "jsonl"))
text = "tokenizers cut text into pieces, 分词器把文本切成片段\n" * 3000
tok.encode_batch([text, text[:100]], return_flat=True)
tok.encode_batch([text], return_flat=True, alpha=0.1)  # beyond the plain-Python budget: the sampling kernels
tok.encode(text[:500])
json.dump(records, sys.stdout)
"""

#: kernels compiled once per encode mode that the script uses (Viterbi and one sampler)
PER_MODE = {"bytepiece.kernels.encode.encode_segments", "bytepiece.kernels.encode.encode_documents",
            "bytepiece.kernels.encode._whole_documents", "bytepiece.kernels.forward._forward_by_tag.<locals>.impl"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(tmp / "numba"), BYTEPIECE_CACHE_DIR=str(tmp / "arrays"))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_no_kernel_is_compiled_twice(compiled):
    signatures: dict[str, list[str]] = defaultdict(list)
    for name, args in compiled:
        if name.startswith("bytepiece."):
            signatures[name].append(args)
    assert "bytepiece.kernels.trie_build.build_double_array" in signatures  # the script reached the kernels
    literal = {name: args for name, sigs in signatures.items() for args in sigs if "Literal[" in args}
    assert not literal, f"compiled for a constant argument (pass a variable or np.int64(...)): {literal}"
    twice = {name: sigs for name, sigs in signatures.items() if len(sigs) > (2 if name in PER_MODE else 1)}
    assert not twice, f"compiled more than once: {twice}"


@pytest.mark.slow
def test_no_array_slice_assignment_in_kernels(compiled):
    names = {name for name, _ in compiled}
    assert not [n for n in names if "raise_with_shape_context" in n], (
        "a kernel assigns an array to a slice (numba compiles its shape check and error text, 1.5-2 s): "
        "use kernels.copying")


SMALL_SCRIPT = SCRIPT.split("from bytepiece import Tokenizer")[0] + r"""
import warnings
from bytepiece import Trainer
from bytepiece_data import data_file

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    Trainer(max_vocab_size=2000, progress=False).train(data_file("sample_corpus.txt"))
json.dump(records, sys.stdout)
"""

#: what README's training job may compile: its corpus (0.8 MB) is small everywhere, so every
#: other step takes its numpy or Python stand-in (``bytepiece.kernels.stand_ins``)
SMALL_CORPUS_KERNELS = {"bytepiece.kernels.bnlm.segment_pieces", "bytepiece.kernels.bnlm._emissions",
                        "bytepiece.kernels.bnlm._viterbi_states"}


@pytest.mark.slow
def test_a_small_corpus_compiles_only_the_segmentation(tmp_path):
    """README's training job compiles the BNLM segmentation and nothing else (it took some forty
    kernels, 15 s more of a first run's CPU): a step that reaches a kernel on a small corpus
    fails this test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba"), BYTEPIECE_CACHE_DIR=str(tmp_path / "arrays"))
    done = subprocess.run([sys.executable, "-c", SMALL_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    kernels = {name for name, _ in json.loads(done.stdout) if name.startswith("bytepiece.")}
    assert kernels == SMALL_CORPUS_KERNELS


def _run_on_a_terminal(argv: list[str], cwd, timeout: float = 600) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its standard streams; (exit status, all it wrote)."""
    import threading

    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        status = proc.wait(timeout=timeout)
    finally:
        proc.kill()
        reader.join(timeout=10)
        os.close(master)
    return status, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_train_on_a_terminal_shows_the_compile_status_with_a_clock(tmp_path):
    """README's main job on a terminal says what the first run's 10-20 s go to, with the seconds
    elapsed so that it visibly moves (a bare spinner looked stuck); the summary reports it apart."""
    status, shown = _run_on_a_terminal(
        [sys.executable, "-c", "from bytepiece_cli.app import main; main()", "train", "-o", "s.model", "-v", "500"],
        cwd=tmp_path)
    assert status == 0, shown[-2000:]
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # colours and cursor movements
    assert "loading kernels (compiled on the first run)" in shown
    assert re.search(r"loading kernels \(compiled on the first run\)\s+\d+:\d\d:\d\d", shown), shown[-2000:]
    assert "loading kernels:" in shown and (tmp_path / "s.model").is_file()
