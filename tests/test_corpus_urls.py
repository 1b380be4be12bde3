"""Corpora behind URLs (fsspec): read in shards like local files, and patterns expanded, since
no shell expands ``s3://bucket/*.jsonl``. fsspec's in-memory file system stands in for a remote one."""

from __future__ import annotations

import json

import pytest

fsspec = pytest.importorskip("fsspec")

from bytepiece import Trainer  # noqa: E402
from bytepiece.corpus import open_corpus  # noqa: E402
from bytepiece.errors import InputError  # noqa: E402


@pytest.fixture
def remote(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"/bytepiece-test-{tmp_path.name}"
    docs = [f"document {i}: the quick brown fox {i * 7} jumps\nover the lazy dog {i % 5}" for i in range(300)]
    local = []
    for part in range(3):
        lines = "".join(json.dumps({"text": d}) + "\n" for d in docs[part::3])
        with fs.open(f"{root}/part-{part}.jsonl", "w") as f:
            f.write(lines)
        path = tmp_path / f"part-{part}.jsonl"
        path.write_text(lines, encoding="utf-8")
        local.append(path)
    yield f"memory://{root}", local
    fs.rm(root, recursive=True)


def test_url_pattern_lists_the_matching_files_in_order(remote):
    url, _ = remote
    with open_corpus(f"{url}/part-*.jsonl") as inputs:
        assert [s.path for s in inputs.sources] == [f"{url}/part-{i}.jsonl" for i in range(3)]
        assert [s.format for s in inputs.sources] == ["jsonl"] * 3


def test_training_on_a_url_pattern_equals_training_on_the_local_files(remote):
    url, local = remote
    trainer = dict(max_vocab_size=300, min_count=2, workers=2, shard_bytes=1 << 20)
    (from_url,) = Trainer(**trainer).train(f"{url}/part-*.jsonl")
    (from_files,) = Trainer(**trainer).train(local)
    assert from_url.pieces == from_files.pieces
    assert from_url.counts.tolist() == from_files.counts.tolist()


def test_a_url_pattern_that_matches_nothing_is_an_input_error(remote):
    url, _ = remote
    with pytest.raises(InputError, match="no file matches"):
        open_corpus(f"{url}/nothing-*.jsonl")


def test_cli_trains_on_a_file_url_pattern_like_on_the_files(tmp_path):
    import subprocess
    import sys

    docs = [f"line {i} of a small corpus, with words like tokenizer and vocabulary {i % 13}" for i in range(400)]
    for part in range(2):
        (tmp_path / f"part-{part}.txt").write_text("\n".join(docs[part::2]) + "\n", encoding="utf-8")

    def train(*inputs: str, out: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bytepiece", "train", *inputs, "-o", out, "-v", "300"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)

    url = (tmp_path / "part-*.txt").as_uri().replace("%2A", "*")
    assert train(url, out="url.model").returncode == 0
    assert train("part-0.txt", "part-1.txt", out="files.model").returncode == 0
    assert (tmp_path / "url.model").read_bytes() == (tmp_path / "files.model").read_bytes()
    missing = train(url.replace("part-", "nothing-"), out="none.model")
    assert missing.returncode == 1 and "no file matches" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
