"""Flat token files (``bytepiece.tokens.binfile``) and ``bytepiece encode --format bin``."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.errors import InputError, ModelFormatError
from bytepiece.model import content_sha256 as model_sha256
from bytepiece.tokens.binfile import BinWriter, index_path, meta_path, open_bin, read_meta
from bytepiece.vocab import token_dtype
from bytepiece_cli.app import app

LINES = ["abcd 中文", "second line  ab", "", "last abcabc", "\tcd\t"]


def _documents(tokens, offsets) -> list[list[int]]:
    return [tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("vocab_size, dtype", [(1, "<u2"), (268, "<u2"), (65536, "<u2"), (65537, "<u4"), (2**32, "<u4")])
def test_dtype_by_vocab_size(vocab_size, dtype):
    assert token_dtype(vocab_size) == np.dtype(dtype)


@pytest.mark.parametrize("bad", [0, -5, 2**32 + 1, 3.5])
def test_dtype_rejects_bad_vocab_size(bad):
    with pytest.raises(InputError):
        token_dtype(bad)


@given(docs=st.lists(st.lists(st.integers(0, 70000), max_size=20), max_size=12), split=st.integers(0, 12))
def test_writer_reader_roundtrip(tmp_path_factory, docs, split):
    path = tmp_path_factory.mktemp("bin") / "c.bin"
    with BinWriter(path, vocab_size=70001) as w:
        w.write_documents(docs[:split])  # two batches, like a streamed corpus
        flat = np.array([i for d in docs[split:] for i in d], dtype=np.int32)
        offsets = np.zeros(len(docs[split:]) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in docs[split:]], out=offsets[1:])
        w.write(flat, offsets)
    tokens, offsets = open_bin(path)
    assert tokens.dtype == np.dtype("<u4")
    assert _documents(tokens, offsets) == docs
    meta = read_meta(path)
    assert meta["n_documents"] == len(docs) and meta["n_tokens"] == sum(map(len, docs))
    assert meta["index"]["entries"] == len(docs) + 1
    # the layout is plain: np.memmap / np.fromfile give the same arrays
    assert np.fromfile(index_path(path), dtype="<i8").tolist() == offsets.tolist()
    if meta["n_tokens"]:
        assert np.memmap(path, dtype="<u4", mode="r").tolist() == tokens.tolist()


def test_uint16_file_and_sidecar_from_tokenizer(tmp_path, tiny_tokenizer):
    path = tmp_path / "c.bin"
    flat, offsets = tiny_tokenizer.encode_batch(LINES, add_eos=True, return_flat=True)
    with BinWriter(path, tiny_tokenizer, metadata={"add_eos": True}) as w:
        w.write(flat, offsets)
        w.write_document(tiny_tokenizer.encode("cd"))
    tokens, index = open_bin(path)
    assert tokens.dtype == np.dtype("<u2") and path.stat().st_size == 2 * len(tokens)
    assert _documents(tokens, index) == tiny_tokenizer.encode_batch(LINES, add_eos=True) + [tiny_tokenizer.encode("cd")]
    meta = json.loads(meta_path(path).read_text())
    assert meta["format"] == "bytepiece-bin" and meta["dtype"] == "uint16" and meta["byteorder"] == "little"
    assert meta["vocab_size"] == tiny_tokenizer.vocab_size
    assert meta["model"]["sha256"] == model_sha256(tiny_tokenizer.model)
    assert meta["metadata"] == {"add_eos": True}


def test_model_hash_depends_on_content_only(tmp_path, tiny_tokenizer):
    counts = dict(zip(tiny_tokenizer.model.pieces, tiny_tokenizer.model.counts.tolist()))
    assert model_sha256(Tokenizer.from_counts(counts).model) == model_sha256(tiny_tokenizer.model)
    counts[b"ab"] += 1
    assert model_sha256(Tokenizer.from_counts(counts).model) != model_sha256(tiny_tokenizer.model)


def test_error_inside_writer_leaves_no_partial_file(tmp_path, tiny_tokenizer):
    path = tmp_path / "c.bin"
    with BinWriter(path, tiny_tokenizer) as w:
        w.write_document([5, 6])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError):
        with BinWriter(path, tiny_tokenizer) as w:
            w.write_document([7, 8, 9])
            raise RuntimeError("input broke mid-way")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old output intact, no temporaries
    fresh = tmp_path / "fresh.bin"
    with pytest.raises(InputError, match="outside the vocabulary"):
        with BinWriter(fresh, tiny_tokenizer) as w:
            w.write_document([tiny_tokenizer.vocab_size])
    assert not fresh.exists() and not meta_path(fresh).exists() and not index_path(fresh).exists()
    assert _leftovers(tmp_path) == []


def test_abandoned_writer_is_cleaned_up(tmp_path):
    w = BinWriter(tmp_path / "c.bin", vocab_size=10)
    w.write_document([1, 2])
    assert len(_leftovers(tmp_path)) == 2
    w.abort()
    assert _leftovers(tmp_path) == [] and not (tmp_path / "c.bin").exists()
    with pytest.raises(InputError, match="closed"):
        w.write_document([1])


@pytest.mark.parametrize(
    "ids, offsets, message",
    [
        ([[1, 2]], None, "1-d"),
        ([1.5], None, "integers"),
        ([-1], None, "outside"),
        ([1, 2], [0, 1], "offsets"),
        ([1, 2], [1, 2], "offsets"),
        ([1, 2], [0, 2, 1, 2], "non-decreasing"),
    ],
)
def test_write_validates(tmp_path, ids, offsets, message):
    with BinWriter(tmp_path / "c.bin", vocab_size=10) as w:
        with pytest.raises(InputError, match=message):
            w.write(np.array(ids), offsets)


def test_reader_detects_incomplete_or_mismatched_files(tmp_path):
    path = tmp_path / "c.bin"
    with BinWriter(path, vocab_size=300) as w:
        w.write_documents([[1, 2, 3], [4]])
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ModelFormatError, match="do not belong together"):
        open_bin(path)
    meta_path(path).unlink()
    with pytest.raises(ModelFormatError, match="incomplete"):
        open_bin(path)
    meta_path(path).write_text('{"format": "something else"}')
    with pytest.raises(ModelFormatError, match="not a bytepiece token file sidecar"):
        open_bin(path)


def test_empty_corpus(tmp_path):
    path = tmp_path / "empty.bin"
    with BinWriter(path, vocab_size=300):
        pass
    tokens, offsets = open_bin(path)
    assert len(tokens) == 0 and offsets.tolist() == [0]


def test_refuses_directory_and_existing_without_overwrite(tmp_path):
    with pytest.raises(InputError, match="directory"):
        BinWriter(tmp_path, vocab_size=10)
    (tmp_path / "c.bin").write_bytes(b"")
    with pytest.raises(FileExistsError):
        BinWriter(tmp_path / "c.bin", vocab_size=10, overwrite=False)
    assert _leftovers(tmp_path) == []


# -- bytepiece encode --format bin ---------------------------------------------------------------------


@pytest.fixture()
def model(tiny_model_file):
    return tiny_model_file


def test_cli_bin_matches_encode_batch(runner, model, tmp_path, tiny_tokenizer, monkeypatch):
    monkeypatch.setattr("bytepiece.tokens.encode.BATCH_BYTES", 16)  # several batches
    corpus = tmp_path / "in.txt"
    lines = LINES * 3
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "corpus.bin"
    result = runner.invoke(app, ["encode", str(corpus), "-m", str(model), "--format", "bin", "-o", str(out), "--add-eos",
                                 "--threads", "2"])
    assert result.exit_code == 0, result.output
    tokens, offsets = open_bin(out)
    assert _documents(tokens, offsets) == tiny_tokenizer.encode_batch(lines, add_eos=True)
    meta = read_meta(out)
    assert meta["n_documents"] == len(lines)
    assert meta["metadata"]["add_eos"] is True
    assert meta["model"]["file"] == "tiny.model" and len(meta["model"]["file_sha256"]) == 64
    assert meta["model"]["sha256"] == model_sha256(tiny_tokenizer.model)
    assert _leftovers(tmp_path) == []


def test_cli_bin_stdin_sampling_is_seeded(runner, model, tmp_path):
    out1, out2 = tmp_path / "a.bin", tmp_path / "b.bin"
    text = "abcabcabcdab\n" * 30
    for out in (out1, out2):
        args = ["encode", "-m", str(model), "-f", "bin", "-o", str(out), "--sample", "alpha=0", "--seed", "7"]
        assert runner.invoke(app, args, input=text).exit_code == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert read_meta(out1)["metadata"]["seed"] == 7 and read_meta(out1)["metadata"]["alpha"] == 0.0


def test_cli_bin_needs_output(runner, model):
    result = runner.invoke(app, ["encode", "-m", str(model), "--format", "bin"], input="ab\n")
    assert result.exit_code == 2  # a command line that cannot run as written
    assert "-o" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_bin_failure_leaves_previous_output(runner, model, tmp_path, monkeypatch):
    import bytepiece.tokens.encode as encode_task  # one token file is written as a stream, in this process

    out = tmp_path / "corpus.bin"
    assert runner.invoke(app, ["encode", "-m", str(model), "-f", "bin", "-o", str(out)], input="ab\n").exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("corpus")}

    monkeypatch.setattr(encode_task, "read_shard", lambda *a, real=encode_task.read_shard, **k: _broken(real(*a, **k)))
    result = runner.invoke(app, ["encode", "-m", str(model), "-f", "bin", "-o", str(out), "--force"], input="cd\n" * 50)
    assert result.exit_code == 1 and "Input/output error" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("corpus")} == before
    assert _leftovers(tmp_path) == []


def _broken(batches):
    yield from batches
    raise OSError(5, "Input/output error")


# -- damaged indexes (issue 18, item 10) ---------------------------------------------------------------
def test_decode_refuses_an_index_whose_offsets_go_back(runner, model, tmp_path, tiny_tokenizer):
    """``.idx`` rewritten to [0, 16, 1, 19]: same size, first and last offsets right; decoding used
    to print overlapping documents with exit 0."""
    path = tmp_path / "x.bin"
    with BinWriter(path, tiny_tokenizer) as w:
        w.write_documents([[5] * 16, [6] * 2, [7]])
    index_path(path).write_bytes(np.array([0, 16, 1, 19], dtype="<i8").tobytes())
    result = runner.invoke(app, ["decode", "-m", str(model), str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert "offsets decrease at document 1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("at", [1, 3, 4, 5, 8])
def test_offsets_are_checked_in_blocks(tmp_path, monkeypatch, at):
    """A huge index is read in blocks; a decrease is found wherever it falls, block edges included."""
    import bytepiece.tokens.binfile as binfile

    monkeypatch.setattr(binfile, "_VERIFY_CHUNK", 4)
    path = tmp_path / "x.bin"
    with BinWriter(path, vocab_size=300) as w:
        w.write_documents([[5, 6]] * 9)
    offsets = np.arange(0, 20, 2, dtype="<i8")
    assert open_bin(path)[1].tolist() == offsets.tolist()
    offsets[at] = offsets[at + 1] + 1 if at < 8 else offsets[at - 1] - 1
    index_path(path).write_bytes(offsets.tobytes())
    with pytest.raises(ModelFormatError, match=f"decrease at document {at if at < 8 else at - 1}"):
        open_bin(path)


def test_a_mapped_file_is_the_one_checked(tmp_path, monkeypatch):
    """Both files are mapped from the descriptors whose type and size were checked, never opened
    again by name (a FIFO or another file swapped in between would be mapped unchecked)."""
    path = tmp_path / "x.bin"
    with BinWriter(path, vocab_size=300) as w:
        w.write_documents([[5, 6], [7]])
    real_memmap = np.memmap

    def only_descriptors(source, *args, **kwargs):
        assert not isinstance(source, (str, bytes, os.PathLike)), f"{source} mapped by name"
        return real_memmap(source, *args, **kwargs)

    monkeypatch.setattr(np, "memmap", only_descriptors)
    tokens, offsets = open_bin(path, verify=True)
    assert tokens.tolist() == [5, 6, 7] and offsets.tolist() == [0, 2, 3]
