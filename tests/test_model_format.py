"""Loading, validating, saving and shipping models (pickle, multiprocessing)."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import pickle

import pytest

from bytepiece import InputError, ModelFormatError, Tokenizer, load_model


def _entries(extra: dict[bytes, int] | None = None, drop: bytes | None = None) -> dict:
    counts = {bytes([b]): b + 1 for b in range(256)}
    counts.update(extra or {b"ab": 50, "中".encode(): 9})
    counts.pop(drop, None)
    ordered = sorted(counts, key=lambda p: (len(p), p))
    return {base64.b64encode(p).decode(): [i + 3, p.decode("utf-8", "ignore"), counts[p]] for i, p in enumerate(ordered)}


def test_loads_path_file_object_and_dict(tmp_path):
    data = _entries()
    path = tmp_path / "m.model"
    path.write_text(json.dumps(data))
    a = Tokenizer(path)
    b = Tokenizer(str(path))
    c = Tokenizer(io.StringIO(json.dumps(data)))
    d = Tokenizer(data)
    assert a.encode("abab 中") == b.encode("abab 中") == c.encode("abab 中") == d.encode("abab 中")
    assert a.vocab_size == 256 + 2 + 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: "{not json", "not a JSON model"),
        (lambda d: [1, 2, 3], "JSON object"),
        (lambda d: {**d, "!!!=": [999, "x", 1]}, "not valid base64"),
        (lambda d: {**d, base64.b64encode(b"zz").decode(): [3, "zz", 5]}, "used twice"),
        (lambda d: {**d, base64.b64encode(b"zz").decode(): [10_000, "zz", 5]}, "contiguous"),
        (lambda d: {k: ([v[0], v[1], 0] if v[1] == "ab" else v) for k, v in d.items()}, "positive"),
        (lambda d: {k: ([v[0], v[1], -3] if v[1] == "ab" else v) for k, v in d.items()}, "positive"),
        (lambda d: _entries(drop=b"\x00"), "missing 0x00"),
        (lambda d: {k: (v[:2] if v[1] == "ab" else v) for k, v in d.items()}, "[id, text, count]"),
        (lambda d: {k: (["7", v[1], v[2]] if v[1] == "ab" else v) for k, v in d.items()}, "non-integer id"),
    ],
    ids=["not-json", "not-object", "bad-base64", "duplicate-id", "non-contiguous", "zero-count", "negative-count",
         "missing-byte", "short-entry", "string-id"],
)
def test_invalid_models_raise_model_format_error(tmp_path, mutate, message):
    bad = mutate(_entries())
    path = tmp_path / "bad.model"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(ModelFormatError) as info:
        Tokenizer(path)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        Tokenizer(tmp_path / "nope.model")
    with pytest.raises(ModelFormatError, match="directory"):
        Tokenizer(tmp_path)


def test_binary_garbage_is_rejected(tmp_path):
    path = tmp_path / "garbage.model"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ModelFormatError, match="not a JSON model"):
        Tokenizer(path)


def test_save_roundtrip_and_original_layout(tmp_path, tiny_tokenizer):
    path = tmp_path / "saved.model"
    tiny_tokenizer.save(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    # Original layout: ids 3.. in (length, bytes) order, [id, text, count] values.
    decoded = sorted(((base64.b64decode(k), v) for k, v in raw.items()), key=lambda kv: kv[1][0])
    assert [v[0] for _, v in decoded] == list(range(3, 3 + len(decoded)))
    assert [p for p, _ in decoded] == sorted((p for p, _ in decoded), key=lambda p: (len(p), p))
    again = Tokenizer(path)
    assert again.pieces() == tiny_tokenizer.pieces()
    assert (again.model.counts == tiny_tokenizer.model.counts).all()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", ["models/bytepiece_80k.model", "golden/train_mixed20k.2000.model"])
def test_saving_a_published_model_gives_the_same_bytes(shared, tmp_path, name):
    """A model without special tokens is written as the original writes it (JSON indented by 4,
    UTF-8 text unescaped): loading and saving a published model changes no byte."""
    from bytepiece.model import load_model

    original = shared / name
    load_model(original).save(tmp_path / "again.model")
    assert (tmp_path / "again.model").read_bytes() == original.read_bytes()


def test_save_is_atomic(tmp_path, tiny_tokenizer, monkeypatch):
    path = tmp_path / "keep.model"
    tiny_tokenizer.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("bytepiece.model.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        tiny_tokenizer.save(path)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != "keep.model"]


def test_metadata_sidecar_keeps_model_file_original(tmp_path):
    from bytepiece import Model

    model = Model.from_counts({bytes([b]): 1 for b in range(256)} | {b"xy": 3}, metadata={"order": 6})
    path = model.save(tmp_path / "m.model")
    assert all(not k.startswith("_") for k in json.loads(path.read_text()))
    assert load_model(path).metadata == {"order": 6}


def test_pickle_roundtrip(tiny_tokenizer):
    clone = pickle.loads(pickle.dumps(tiny_tokenizer))
    assert clone.encode("abcd 中文", alpha=0.2, seed=1) == tiny_tokenizer.encode("abcd 中文", alpha=0.2, seed=1)
    assert len(pickle.dumps(tiny_tokenizer)) < 20_000  # the model, not the trie arrays


def _encode_in_worker(args):
    tokenizer, text = args
    return tokenizer.encode(text)


def test_tokenizer_travels_to_worker_processes(tiny_tokenizer):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        got = pool.map(_encode_in_worker, [(tiny_tokenizer, "abcd"), (tiny_tokenizer, "中文ab")])
    assert got == [tiny_tokenizer.encode("abcd"), tiny_tokenizer.encode("中文ab")]


def test_bad_arguments_raise_input_error(tiny_tokenizer):
    with pytest.raises(InputError, match="outside this vocabulary"):
        tiny_tokenizer.decode([5, 10**6])
    with pytest.raises(InputError, match="outside this vocabulary"):
        tiny_tokenizer.decode([-1])
    for not_an_int in (3.5, True, "7"):  # audit: 3.5 was "outside this vocabulary"
        with pytest.raises(InputError, match=rf"token id {not_an_int!r} is not an integer"):
            tiny_tokenizer.decode([4, not_an_int])  # type: ignore[list-item]
    for not_ids in (None, 5, 1.5):
        with pytest.raises(InputError, match="ids must be a sequence of integers"):
            tiny_tokenizer.decode(not_ids)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="outside this vocabulary"):
        tiny_tokenizer.id_to_piece(10**6)
    with pytest.raises(InputError, match="not a piece"):
        tiny_tokenizer.piece_to_id(b"\xff\xfe\xfd")
    with pytest.raises(InputError, match="alpha"):
        tiny_tokenizer.encode("ab", alpha=float("nan"))
    with pytest.raises(InputError, match="seed"):
        tiny_tokenizer.encode("ab", alpha=0.1, seed="x")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="iterable of texts"):
        tiny_tokenizer.encode_batch("abc")
    with pytest.raises(InputError, match="num_threads"):
        tiny_tokenizer.encode_batch(["a"], num_threads=0)
    with pytest.raises(InputError, match="str or bytes"):
        tiny_tokenizer.encode(123)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="surrogate"):
        tiny_tokenizer.encode("a\ud800b")
    with pytest.raises(InputError, match="normalization"):
        Tokenizer(tiny_tokenizer.model, normalization="nfkc")  # type: ignore[arg-type]


def test_a_missing_model_file_is_also_a_file_not_found_error(tmp_path):
    """Audit: ``except FileNotFoundError`` missed a missing model (a plain ModelFormatError)."""
    from bytepiece import ModelNotFoundError, Tokenizer, load_model

    missing = tmp_path / "nope.model"
    for load in (Tokenizer, load_model):
        with pytest.raises(FileNotFoundError) as caught:
            load(missing)
        assert isinstance(caught.value, ModelNotFoundError) and isinstance(caught.value, ModelFormatError)
        assert str(caught.value) == f"model file {missing} does not exist"
    broken = tmp_path / "broken.model"
    broken.write_text("{not json")
    with pytest.raises(ModelFormatError) as caught:
        Tokenizer(broken)
    assert not isinstance(caught.value, FileNotFoundError)


def test_a_bad_count_is_shown_as_the_number_in_the_file(tmp_path):
    """Audit: the message read ``has count np.int64(-5)``."""
    model = {"_normalization": "nfc", **{base64.b64encode(bytes([b])).decode(): [b + 3, chr(b), 2] for b in range(256)}}
    model["YQ=="][2] = -5
    path = tmp_path / "neg.model"
    path.write_text(json.dumps(model))
    with pytest.raises(ModelFormatError, match=r"piece b'a' \(id \d+\) has count -5; counts must be positive"):
        Tokenizer(path)


def test_special_tokens_that_are_not_a_list_are_an_input_error(tiny_tokenizer):
    """Audit: ``add_special_tokens(None)`` raised a bare TypeError."""
    for value in (None, 5):
        with pytest.raises(InputError, match="special tokens must be a list of strings"):
            tiny_tokenizer.add_special_tokens(value)  # type: ignore[arg-type]
