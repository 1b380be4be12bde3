"""The command line on a Dask cluster that is misnamed: one line, at once. Every case is a real
``bytepiece`` process, bounded by a timeout so that a hang fails instead of stalling the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

BAD_ADDRESSES = ["garbage", "udp://127.0.0.1:1", "tcp://127.0.0.1:notaport", "tcp://127.0.0.1:99999"]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def _bytepiece(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bytepiece", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    return done, time.perf_counter() - t0


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i}: some words to count, abcd ab\n" for i in range(300)), encoding="utf-8")
    return path


@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("command", ["train", "encode"])
def test_a_bad_cluster_address_is_one_line_at_once(command, address, corpus, tiny_model_file, tmp_path):
    if command == "train":
        done, seconds = _bytepiece("train", str(corpus), "-o", str(tmp_path / "m.model"), "--cluster", address)
    else:
        done, seconds = _bytepiece("encode", str(corpus), "-m", str(tiny_model_file), "-f", "bin", "-o",
                                   str(tmp_path / "out"), "--cluster", address)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr  # no traceback after it
    assert f"error: cluster '{address}' is not a Dask scheduler address (" in done.stderr
    assert "give tcp://HOST:PORT, local:N or threads" in done.stderr
    assert seconds < 20  # the half-built client used to wait 60 s at exit
    assert not list(tmp_path.glob("m.model*")) and not list(tmp_path.glob("out*"))


_API_SCRIPT = """
import sys
from bytepiece import Trainer
from bytepiece.engine import dask as dask_engine

if sys.argv[3] == "found-when-connecting":
    dask_engine.address_problem = lambda address: None  # as for a mistake only the connection finds
try:
    Trainer(max_vocab_size=300, cluster=sys.argv[2], progress=False).train(sys.argv[1])
except Exception as e:
    kept = e  # alive until the interpreter exits, as in a script that reports it at the end
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("found", ["found-before-connecting", "found-when-connecting"])
def test_a_bad_address_from_python_leaves_nothing_to_wait_for_at_exit(found, corpus):
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _API_SCRIPT, str(corpus), "garbage", found], capture_output=True,
                          text=True, timeout=120)
    assert time.perf_counter() - t0 < 20, done.stderr
    assert done.returncode == 0
    assert done.stdout.startswith("InputError cluster 'garbage' is not a Dask scheduler address (missing port")
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
