"""The default model's trie ships with it (``bytepiece.tokenizer.shipped``): it is exactly the
trie the kernels build, and with it a first run that encodes with the default model (empty
numba cache, empty model cache) never imports numba."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from bytepiece import Tokenizer
from bytepiece.tokenizer.shipped import default_trie_path, pieces_key, shipped_trie
from bytepiece_data import DEFAULT_MODEL, data_file
from bytepiece_data.make_default_trie import build

SCRIPT = """
import json, sys
from bytepiece import Tokenizer
from bytepiece_data import DEFAULT_MODEL, data_file
ids = Tokenizer(data_file(DEFAULT_MODEL)).encode("hello world, 你好世界")
print(json.dumps({"ids": ids, "numba": "numba" in sys.modules}))
"""


def test_shipped_trie_is_the_one_the_kernels_build():
    key, built = build()
    shipped = shipped_trie(key)
    assert shipped is not None, f"{default_trie_path()} is stale or missing: run python data/make_default_trie.py"
    assert shipped.max_depth == built.max_depth
    assert np.array_equal(shipped.base_check, built.base_check)
    assert np.array_equal(shipped.piece, built.piece)


def test_other_pieces_do_not_get_the_shipped_trie():
    pieces = [bytes([b]) for b in range(256)] + [b"ab"]
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype(np.int64)
    assert shipped_trie(pieces_key(b"".join(pieces), offsets)) is None


def test_first_run_with_the_default_model_needs_no_numba(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba"), BYTEPIECE_CACHE_DIR=str(tmp_path / "arrays"))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["numba"] is False, "loading the default model compiled its trie"
    assert result["ids"] == Tokenizer(data_file(DEFAULT_MODEL)).encode("hello world, 你好世界")
