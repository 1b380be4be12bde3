"""Pickling a ``Tokenizer``: by reference to its model file when it was loaded from one (path,
content hash, options), by value otherwise; a changed or missing file is refused on unpickling."""

from __future__ import annotations

import json
import multiprocessing
import pickle

import pytest

from bytepiece import Tokenizer
from bytepiece.errors import ModelFormatError
from bytepiece.model import Model, load_model
from bytepiece.tokenizer import loading
from bytepiece_data import DEFAULT_MODEL, data_file

TEXTS = ["abcd abcab 中文 aab", "", "\n\nab\ncd  ", "x" * 300, "e\u0301 <|sep|> abc<|end|>"]
SPECIALS = ["<|sep|>", "<|end|>"]


def _same_ids(a: Tokenizer, b: Tokenizer) -> None:
    for text in TEXTS:
        assert a.encode(text) == b.encode(text)
        assert a.encode(text, allowed_special="all") == b.encode(text, allowed_special="all")
        assert a.encode(text, alpha=0.3, seed=5) == b.encode(text, alpha=0.3, seed=5)
    assert a.encode_batch(TEXTS, add_eos=True) == b.encode_batch(TEXTS, add_eos=True)


def test_a_file_loaded_tokenizer_pickles_small_and_gives_the_same_ids(tmp_path, monkeypatch):
    model = tmp_path / "default.model"
    model.write_bytes(data_file(DEFAULT_MODEL).read_bytes())
    monkeypatch.chdir(tmp_path)
    tok = Tokenizer("default.model")  # a relative path: the pickle holds the absolute one
    data = pickle.dumps(tok)
    by_value = pickle.dumps(Tokenizer(tok.model))
    assert len(data) < 400 and len(by_value) > 500_000, (len(data), len(by_value))
    monkeypatch.chdir(tmp_path.parent)
    _same_ids(pickle.loads(data), tok)
    assert pickle.loads(data).normalization == "nfc"


def test_options_and_special_tokens_survive(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.model.with_special_tokens(SPECIALS[:1]).save(path)  # one special token in the file
    tok = Tokenizer(path, normalization="none", special_tokens=SPECIALS[1:])  # and one added
    tok.add_special_tokens(["<|late|>"])
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.normalization == "none"
    assert copy.special_tokens == ("<|sep|>", "<|end|>", "<|late|>")
    _same_ids(copy, tok)
    assert pickle.loads(pickle.dumps(copy)).special_tokens == copy.special_tokens  # and again


def test_unpickling_loads_through_the_array_cache(tmp_path, tiny_tokenizer, monkeypatch):
    """The file's arrays are cached by the first load: unpickling neither parses nor builds."""
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    data = pickle.dumps(Tokenizer(path))

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling must load the cached arrays")

    monkeypatch.setattr(loading, "load_model_bytes", refuse)
    monkeypatch.setattr(loading, "build_arrays", refuse)
    _same_ids(pickle.loads(data), tiny_tokenizer)


def test_a_file_holding_the_same_model_in_other_json_is_accepted(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    data = pickle.dumps(Tokenizer(path))
    raw = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(dict(reversed(list(raw.items())))), encoding="utf-8")  # other bytes, same model
    _same_ids(pickle.loads(data), tiny_tokenizer)


def test_a_changed_model_file_is_refused(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    data = pickle.dumps(Tokenizer(path))
    model = load_model(path)
    counts = model.counts.copy()
    counts[0] += 1
    Model(model.pieces, counts).save(path)
    with pytest.raises(ModelFormatError, match=r"tiny.model: the model in that file changed since the tokenizer was "
                                               r"pickled \(content sha256"):
        pickle.loads(data)


def test_changed_special_tokens_are_refused(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.model.with_special_tokens(SPECIALS).save(path)
    data = pickle.dumps(Tokenizer(path))
    tiny_tokenizer.model.with_special_tokens(SPECIALS[::-1]).save(path)  # same pieces, other special ids
    with pytest.raises(ModelFormatError, match="changed since the tokenizer was pickled .special tokens"):
        pickle.loads(data)


def test_a_missing_model_file_is_refused_with_the_way_out(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    data = pickle.dumps(Tokenizer(path))
    path.unlink()
    with pytest.raises(ModelFormatError, match=r"cannot unpickle the Tokenizer of .*tiny.model: .*Tokenizer\(tok.model"):
        pickle.loads(data)


def test_tokenizers_not_loaded_from_a_file_pickle_their_model(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    by_value = Tokenizer(load_model(path), normalization="none")
    data = pickle.dumps(by_value)
    path.unlink()  # not needed
    copy = pickle.loads(data)
    assert copy.normalization == "none"
    _same_ids(copy, by_value)


def _encode_in_worker(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return tok.encode_batch(texts)


def test_spawned_workers_get_the_tokenizer(tmp_path, tiny_tokenizer):
    """Fresh interpreters (a ``spawn`` pool) receive the reference and load the file themselves."""
    path = tmp_path / "tiny.model"
    tiny_tokenizer.model.with_special_tokens(SPECIALS).save(path)
    tok = Tokenizer(path)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap_async(_encode_in_worker, [(tok, TEXTS), (tok, TEXTS[::-1])]).get(timeout=180)
    assert results == [tok.encode_batch(TEXTS), tok.encode_batch(TEXTS[::-1])]


def test_by_value_carries_the_model_for_processes_that_cannot_read_the_file(tmp_path):
    """What corpus encoding sends a cluster's workers: the model itself, not its path."""
    model = tmp_path / "m.model"
    model.write_bytes(data_file(DEFAULT_MODEL).read_bytes())
    tok = Tokenizer(model, special_tokens=SPECIALS)
    data = pickle.dumps(tok.by_value())
    assert len(data) > 500_000 and len(pickle.dumps(tok)) < 400
    model.unlink()
    _same_ids(pickle.loads(data), tok)
