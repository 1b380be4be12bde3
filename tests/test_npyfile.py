"""``NpyWriter``: streamed ``.npy`` ids and ``.offsets.npy`` that plain ``numpy.load`` reads,
written as one atomic set; ``open_npy`` / ``open_token_file`` read them (and ``.bin``) back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece.errors import InputError, ModelFormatError
from bytepiece.tokens.binfile import BinWriter
from bytepiece.tokens.formats import open_token_file
from bytepiece.tokens.npyfile import NpyWriter, offsets_path, open_npy

batches = st.lists(st.lists(st.lists(st.integers(0, 69_999), max_size=6), max_size=5), max_size=4)


@given(batches, st.sampled_from([300, 65_536, 70_000]))
def test_batches_round_trip_through_numpy_load(tmp_path_factory, docs_per_batch, vocab_size):
    path = tmp_path_factory.mktemp("npy") / "ids.npy"
    docs_per_batch = [[[i % vocab_size for i in d] for d in batch] for batch in docs_per_batch]
    with NpyWriter(path, vocab_size=vocab_size) as writer:
        for batch in docs_per_batch:
            flat = np.array([i for d in batch for i in d], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum([len(d) for d in batch])]).astype(np.int64)
            writer.write(flat, offsets)
    docs = [d for batch in docs_per_batch for d in batch]
    ids, offsets = np.load(path), np.load(offsets_path(path))
    assert ids.dtype == (np.uint16 if vocab_size <= 65_536 else np.uint32)
    assert [ids[a:b].tolist() for a, b in zip(offsets, offsets[1:])] == docs
    assert writer.n_documents == len(docs) and writer.n_tokens == len(ids)
    tokens, offs = open_npy(path)
    assert tokens.tolist() == ids.tolist() and offs.tolist() == offsets.tolist()


def test_an_error_keeps_the_previous_files(tmp_path):
    path = tmp_path / "ids.npy"
    with NpyWriter(path, vocab_size=300) as writer:
        writer.write(np.array([7, 8]), np.array([0, 2]))
    before = path.read_bytes(), offsets_path(path).read_bytes()
    with pytest.raises(RuntimeError), NpyWriter(path, vocab_size=300, overwrite=True) as writer:
        writer.write(np.array([9]), np.array([0, 1]))
        raise RuntimeError("interrupted")
    assert (path.read_bytes(), offsets_path(path).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npy", "ids.offsets.npy"]
    with pytest.raises(FileExistsError):
        NpyWriter(path, vocab_size=300, overwrite=False)
    with pytest.raises(InputError), NpyWriter(tmp_path / "x.npy", vocab_size=300) as writer:
        writer.write(np.array([300]), np.array([0, 1]))


def test_open_token_file_tells_the_formats_apart(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("1 2 3\n")
    assert open_token_file(text) is None
    with BinWriter(tmp_path / "c.bin", vocab_size=300) as writer:
        writer.write(np.array([4, 5, 6]), np.array([0, 1, 3]))
    tokens, offsets = open_token_file(tmp_path / "c.bin")
    assert tokens.tolist() == [4, 5, 6] and offsets.tolist() == [0, 1, 3]
    np.save(tmp_path / "lone.npy", np.arange(3))
    with pytest.raises(ModelFormatError, match="offsets.npy"):
        open_token_file(tmp_path / "lone.npy")
    np.save(tmp_path / "lone.offsets.npy", np.array([0, 5]))
    with pytest.raises(ModelFormatError, match="do not belong together"):
        open_npy(tmp_path / "lone.npy")


def test_offsets_that_go_back_are_refused(tmp_path, runner, tiny_model_file):
    """An ``.npy`` with offsets [0, 5, 2]: a document would end before it starts; decode used
    to accept it."""
    from bytepiece_cli.app import app

    np.save(tmp_path / "ids.npy", np.arange(3, 5, dtype=np.uint16))
    np.save(tmp_path / "ids.offsets.npy", np.array([0, 5, 2], dtype=np.int64))
    with pytest.raises(ModelFormatError, match="decrease at document 1"):
        open_npy(tmp_path / "ids.npy")
    result = runner.invoke(app, ["decode", "-m", str(tiny_model_file), str(tmp_path / "ids.npy")])
    assert result.exit_code == 1 and result.stdout == "" and "decrease" in result.stderr


@pytest.mark.parametrize("ids, message", [
    (np.array([[1, 2]], dtype=np.uint16), "1-d array"),
    (np.array([b"x"], dtype=object), "not a NumPy|1-d array"),
    (np.array([1.5, 2.5]), "integer arrays"),
])
def test_npy_arrays_of_other_kinds_are_refused(tmp_path, ids, message):
    np.save(tmp_path / "ids.npy", ids, allow_pickle=True)
    np.save(tmp_path / "ids.offsets.npy", np.array([0, 2], dtype=np.int64))
    with pytest.raises(ModelFormatError, match=message):
        open_npy(tmp_path / "ids.npy")


def test_truncated_npy_is_refused(tmp_path):
    with NpyWriter(tmp_path / "ids.npy", vocab_size=300) as writer:
        writer.write(np.array([7, 8, 9]), np.array([0, 3]))
    data = (tmp_path / "ids.npy").read_bytes()
    (tmp_path / "ids.npy").write_bytes(data[:-2])
    with pytest.raises(ModelFormatError, match="truncated or damaged"):
        open_npy(tmp_path / "ids.npy")
