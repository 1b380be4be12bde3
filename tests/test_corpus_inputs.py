"""Corpus inputs that used to be read wrongly or refused (issues 18 and 19): pipes and files that
report no size (read once: copied first), symbolic link loops, devices, empty field names,
empty and closed standard input, and which names are JSON Lines."""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path

import pytest

from bytepiece.corpus import Files, open_corpus, plan_shards, read_shard
from bytepiece.corpus.sources import TEXT_SUFFIXES, format_of
from bytepiece.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _corpus_docs(corpus, **kwargs) -> list[bytes]:
    with open_corpus(corpus, **kwargs) as inputs:
        docs = []
        for shard in plan_shards(inputs.sources):
            for batch in read_shard(shard, purpose="encode"):
                docs += [batch.data[batch.offsets[i]:batch.offsets[i + 1]] for i in range(batch.n_documents)]
        return docs


# -- inputs read once: pipes, files that report no size; what cannot be read --------------------

def _feed_in_thread(path_or_fd, data: bytes) -> threading.Thread:
    def write():
        with open(path_or_fd, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_named_pipe_is_copied_once_and_read(tmp_path):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    writer = _feed_in_thread(fifo, b"first\nsecond\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    assert _corpus_docs(fifo, tmp_dir=spool) == [b"first", b"second"]
    writer.join(5)
    assert not list(spool.iterdir())  # the copy is gone once the corpus is closed


def test_an_anonymous_pipe_like_process_substitution_is_read(tmp_path):
    read_end, write_end = os.pipe()
    writer = _feed_in_thread(write_end, gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    try:
        assert _corpus_docs(Files([f"/dev/fd/{read_end}"], jsonl_field="text")) == [b"one", b"two"]
    finally:
        writer.join(5)
        os.close(read_end)


def test_a_file_that_reports_no_size_is_read_whole():
    path = Path("/proc/self/mounts")
    if not path.exists() or path.stat().st_size != 0:
        pytest.skip("needs Linux /proc files that report size 0")
    docs = _corpus_docs(path)
    assert docs and docs[0] == path.read_bytes().split(b"\n")[0]


def test_symbolic_link_loop_is_named(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InputError, match="is a symbolic link loop"):
        _corpus_docs(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="symbolic link to a file that does not exist"):
        _corpus_docs(tmp_path / "dangling")


def test_a_device_is_refused(device_node):
    with pytest.raises(InputError, match="is a character device, not a file"):
        _corpus_docs(device_node("zero", 5))


# -- JSON Lines or plain text --------------------------------------------------------------------

@pytest.mark.parametrize("name, plain, with_field", [
    ("notes", "text", "jsonl"), ("notes.dat", "text", "jsonl"), ("-", "text", "jsonl"),
    ("c.txt", "text", "text"), ("c.txt.gz", "text", "text"), ("c.md.zst", "text", "text"),
    ("c.jsonl", "jsonl", "jsonl"), ("c.ndjson.gz", "jsonl", "jsonl"), ("c.json", "jsonl", "jsonl"),
    ("c.parquet", "parquet", "parquet"), ("d.jsonl/notes", "text", "jsonl"),
])
def test_format_rule(name, plain, with_field):
    assert format_of(name, jsonl_field_given=False) == plain
    assert format_of(name, jsonl_field_given=True) == with_field


def test_documented_text_extensions_are_the_ones_used():
    text = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")
    section = text[text.index("## Corpus inputs"):text.index("## Exported models")]
    assert all(f"`{suffix}`" in section for suffix in TEXT_SUFFIXES)


def test_name_without_extension_is_text_unless_a_field_is_given(tmp_path):
    path = tmp_path / "plain_noext"
    path.write_text('{"text": "a"}\nplain line\n', encoding="utf-8")
    assert _corpus_docs(path) == [b'{"text": "a"}', b"plain line"]
    path.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    assert _corpus_docs(Files([path], jsonl_field="text")) == [b"a", b"b"]


@pytest.mark.parametrize("option", [{"jsonl_field": ""}, {"parquet_column": ""}])
def test_empty_field_name_is_refused(tmp_path, option):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="name is empty"):
        _corpus_docs(path, **option)
    with pytest.raises(InputError, match="name is empty"):
        _corpus_docs(Files([path], **option))


def test_empty_standard_input_is_an_empty_corpus(monkeypatch, tmp_path):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert _corpus_docs("-", tmp_dir=tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_closed_standard_input_says_so(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="standard input is closed"):
        _corpus_docs("-")


def test_standard_input_is_json_lines_when_a_field_is_given(monkeypatch, tmp_path):
    import io
    import sys

    records = b'{"text": "a"}\n{"text": "b"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(records)))
    assert _corpus_docs(Files(["-"], jsonl_field="text")) == [b"a", b"b"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(records)))
    assert _corpus_docs("-") == records.rstrip(b"\n").split(b"\n")
