"""``datasets.Dataset.map(batched=True, num_proc=2)`` with ``Tokenizer.encode_batch`` gives the
ids of a plain loop, and what ``datasets`` ships to each worker is a few hundred bytes, not the
model. The pipeline runs in a child process with a time limit: a worker that hangs (thread
pools after ``fork``) fails the test instead of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bytepiece_data import DEFAULT_MODEL, data_file

SCRIPT = textwrap.dedent('''
    import sys

    import dill
    from datasets import Dataset

    from bytepiece import Tokenizer

    tok = Tokenizer(sys.argv[1], normalization="none", special_tokens=["<|sep|>"])
    texts = [f"row {i}: e\\u0301 中文 <|sep|> abcd" * (i % 7) for i in range(3000)]


    def encode(batch):
        return {"ids": tok.encode_batch(batch["text"], add_eos=True, allowed_special="all")}


    if __name__ == "__main__":
        shipped = len(dill.dumps(encode, recurse=True))
        assert shipped < 5000, f"datasets would send {shipped:,} bytes to every worker"
        dataset = Dataset.from_dict({"text": texts})
        out = dataset.map(encode, batched=True, batch_size=100, num_proc=2, remove_columns=["text"])
        expected = [tok.encode(t, add_eos=True, allowed_special="all") for t in texts]
        assert out["ids"] == expected, "map(num_proc=2) and the loop disagree"
        print("ok", shipped)
''')


def test_datasets_map_with_worker_processes_gives_the_loops_ids(tmp_path):
    pytest.importorskip("datasets")
    pytest.importorskip("dill")
    model = tmp_path / "default.model"  # 32k pieces: 610 kB when pickled with the model
    model.write_bytes(data_file(DEFAULT_MODEL).read_bytes())
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT, encoding="utf-8")
    home = tmp_path / "hf"
    done = subprocess.run(
        [sys.executable, str(script), str(model)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HOME": str(home), "HF_DATASETS_CACHE": str(home / "datasets"),
             "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
