"""``bytepiece encode --format bin --add-eos -o train.bin`` is nanoGPT's ``train.bin``: read here
the way nanoGPT's training loop reads it (``np.memmap(..., dtype=np.uint16)``, random windows
turned into int64), it is every document's ids followed by ``<eos>``."""

from __future__ import annotations

import numpy as np

from bytepiece import Tokenizer
from bytepiece_cli.app import app
from bytepiece_data import DEFAULT_MODEL, data_file

DOCUMENTS = ["The quick brown fox.", "今天天气不错。", "", "def f(x):    return x  # code", "e\u0301 last line"]


def test_bin_with_eos_is_nanogpts_train_bin(runner, tmp_path):
    model = data_file(DEFAULT_MODEL)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCUMENTS) + "\n", encoding="utf-8")
    out = tmp_path / "train.bin"
    result = runner.invoke(app, ["encode", str(corpus), "-m", str(model), "--add-eos", "--format", "bin",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output

    tok = Tokenizer(model)
    assert tok.vocab_size <= 1 << 16
    expected = [i for doc in DOCUMENTS for i in tok.encode(doc) + [tok.eos_id]]
    data = np.memmap(out, dtype=np.uint16, mode="r")  # nanoGPT's get_batch
    assert data.tolist() == expected
    assert out.stat().st_size == 2 * len(expected)  # no header
    block_size = 8
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(data) - block_size, size=16):
        x = data[i:i + block_size].astype(np.int64)
        y = data[i + 1:i + 1 + block_size].astype(np.int64)
        assert x.tolist() == expected[i:i + block_size] and y.tolist() == expected[i + 1:i + 1 + block_size]
    ends = np.flatnonzero(np.asarray(data) == tok.eos_id)
    assert len(ends) == len(DOCUMENTS) and ends[-1] == len(data) - 1  # one eos after every document
