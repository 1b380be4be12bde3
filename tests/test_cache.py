"""The on-disk cache of model arrays: hits, and every kind of bad entry still giving correct ids."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from bytepiece import Tokenizer, cache
from bytepiece.model import Model

TEXTS = ["abcd abcab 中文 aab", "", "\n\nab\ncd  ", "x" * 300]


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("BYTEPIECE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "bytepiece"


@pytest.fixture()
def model_file(tmp_path, tiny_tokenizer):
    path = tmp_path / "tiny.model"
    tiny_tokenizer.save(path)
    return path


def _entries(directory):
    return sorted(directory.glob("*.npy")) if directory.is_dir() else []


def _same_behaviour(tokenizer: Tokenizer, reference: Tokenizer) -> None:
    for text in TEXTS:
        assert tokenizer.encode(text) == reference.encode(text)
        assert tokenizer.encode(text, alpha=0.5, seed=3) == reference.encode(text, alpha=0.5, seed=3)
        assert tokenizer.tokenize(text) == reference.tokenize(text)
    assert tokenizer.encode_batch(TEXTS, return_flat=True)[0].tolist() == reference.encode_batch(TEXTS, return_flat=True)[0].tolist()
    assert tokenizer.pieces() == reference.pieces()
    assert tokenizer.vocab_size == reference.vocab_size and tokenizer.max_piece_length == reference.max_piece_length
    assert np.array_equal(tokenizer.scores, reference.scores)


def test_second_load_reads_the_entry_instead_of_building(cache_home, model_file, tiny_tokenizer, monkeypatch):
    first = Tokenizer(model_file)
    (entry,) = _entries(cache_home)
    assert entry.name.startswith(cache.model_sha256(model_file.read_bytes()))

    def no_build(model):
        raise AssertionError("a valid entry must not be rebuilt")

    monkeypatch.setattr(cache, "build_arrays", no_build)
    second = Tokenizer(model_file)
    _same_behaviour(second, tiny_tokenizer)
    _same_behaviour(first, tiny_tokenizer)
    assert second.model.pieces == tiny_tokenizer.model.pieces
    assert np.array_equal(second.model.counts, tiny_tokenizer.model.counts)
    monkeypatch.undo()
    restored = pickle.loads(pickle.dumps(second))  # pickles the model, rebuilt on loading
    _same_behaviour(restored, tiny_tokenizer)


def test_metadata_survives_the_cache(cache_home, tmp_path):
    counts = {bytes([b]): 1 + b for b in range(256)}
    counts[b"ab"] = 99
    path = tmp_path / "meta.model"
    Model.from_counts(counts, metadata={"trainer": {"order": 6}}).save(path)
    raw = json.loads(path.read_text())
    raw["_note"] = "inline, in the model file itself"
    path.write_text(json.dumps(raw))
    built = Tokenizer(path)
    cached = Tokenizer(path)
    assert _entries(cache_home)
    assert built.model.metadata == cached.model.metadata == {"_note": "inline, in the model file itself", "trainer": {"order": 6}}


def test_changed_model_file_is_not_served_the_old_arrays(cache_home, tmp_path):
    path = tmp_path / "m.model"
    a = {bytes([b]): 1 for b in range(256)} | {b"ab": 50}
    b = {bytes([b]): 1 for b in range(256)} | {b"bc": 50, b"abc": 70}
    Model.from_counts(a).save(path)
    assert Tokenizer(path).tokenize("abc") == [b"ab", b"c"]
    Model.from_counts(b).save(path)  # same path, same size class, new content
    assert Tokenizer(path).tokenize("abc") == [b"abc"]
    assert len(_entries(cache_home)) == 2


def _damage_tail(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _damage_header(data: bytes) -> bytes:
    i = data.index(b'"format"')
    return data[:i] + b'"formaT"' + data[i + 8 :]


def _damage_middle(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x80]) + data[i + 1 :]


DAMAGE = {
    "truncated": lambda d: d[: len(d) // 2],
    "empty": lambda d: b"",
    "last byte flipped": _damage_tail,
    "middle byte flipped": _damage_middle,
    "header field renamed": _damage_header,
    "not npy": lambda d: b"\x93NUMPY garbage" + d[20:],
    "pickle": lambda d: pickle.dumps({"base_check": [1, 2, 3]}),
    "zip": lambda d: b"PK\x03\x04" + d[4:],
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_entry_is_rebuilt_and_ids_stay_correct(cache_home, model_file, tiny_tokenizer, damage):
    Tokenizer(model_file)
    (entry,) = _entries(cache_home)
    good = entry.read_bytes()
    entry.write_bytes(DAMAGE[damage](good))
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert entry.read_bytes() == good, "the damaged entry is replaced by a valid one"


def test_entry_of_another_model_under_this_name_is_refused(cache_home, model_file, tmp_path, tiny_tokenizer):
    other = tmp_path / "other.model"
    Model.from_counts({bytes([b]): 1 for b in range(256)} | {b"abcd": 1000}).save(other)
    Tokenizer(other)
    Tokenizer(model_file)
    entries = {e.name.split(".")[0]: e for e in _entries(cache_home)}
    mine = entries[cache.model_sha256(model_file.read_bytes())]
    theirs = entries[cache.model_sha256(other.read_bytes())]
    mine.write_bytes(theirs.read_bytes())  # well-formed, valid checksum, wrong model
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)


def test_out_of_bounds_arrays_with_a_valid_checksum_are_refused(cache_home, model_file, tiny_tokenizer):
    """An entry written by something else (valid crc32, bad content) must not reach the kernels,
    which do not check bounds."""
    sha = cache.model_sha256(model_file.read_bytes())
    arrays = cache.build_arrays(Tokenizer(model_file).model)
    for field, bad in [("base_check", 10**6), ("pair", 10**6), ("piece", 10**6), ("base_check", -5)]:
        values = np.array(getattr(arrays, field))
        values[-1] = bad
        entry = cache.entry_path(cache_home, sha)
        cache.store(entry, sha, arrays._replace(**{field: values}), {})
        assert cache.load_cached(entry, sha) is None
        _same_behaviour(Tokenizer(model_file), tiny_tokenizer)


@pytest.mark.parametrize("field, value", [("format", 0), ("bytepiece", "0.0.0"), ("model_sha256", "0" * 64)])
def test_stale_header_is_refused(cache_home, model_file, field, value):
    sha = cache.model_sha256(model_file.read_bytes())
    Tokenizer(model_file)
    entry = cache.entry_path(cache_home, sha)
    raw = np.load(entry, allow_pickle=False)
    length = int.from_bytes(raw[:8].tobytes(), "little")
    header = json.loads(raw[8 : 8 + length].tobytes())
    header[field] = value
    new = json.dumps(header).encode().ljust(length)
    raw[8 : 8 + length] = np.frombuffer(new[:length], dtype=np.uint8)
    np.save(entry, raw)
    assert cache.load_cached(entry, sha) is None


def test_unwritable_cache_location_is_skipped(tmp_path, monkeypatch, model_file, tiny_tokenizer):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monkeypatch.delenv("BYTEPIECE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # .../a_file/bytepiece cannot be created
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)


def test_read_only_cache_directory_is_skipped(tmp_path, monkeypatch, model_file, tiny_tokenizer):
    directory = tmp_path / "ro"
    directory.mkdir()
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(directory))
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(directory))

    import bytepiece.atomic

    monkeypatch.setattr(bytepiece.atomic, "atomic_open", refuse)
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert not _entries(directory)


def test_empty_cache_dir_variable_disables_the_cache(tmp_path, monkeypatch, model_file, tiny_tokenizer):
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert not (tmp_path / "xdg").exists()


def test_cache_dir_follows_xdg_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv("BYTEPIECE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x" / "bytepiece"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "bytepiece"
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(tmp_path / "override"))
    assert cache.cache_dir() == tmp_path / "override"


def test_missing_model_file_still_says_so(cache_home, tmp_path):
    from bytepiece import ModelFormatError

    with pytest.raises(ModelFormatError, match="does not exist"):
        Tokenizer(tmp_path / "nope.model")
    with pytest.raises(ModelFormatError, match="directory"):
        Tokenizer(tmp_path)


def test_published_model_round_trips_through_the_cache(cache_home, shared, load_shared_tokenizer):
    reference = load_shared_tokenizer("bytepiece_80k")
    path = shared / "models" / "bytepiece_80k.model"
    Tokenizer(path)
    cached = Tokenizer(path)
    assert "model" not in cached.__dict__, "a cache hit does not parse the model"
    text = (shared / "corpora" / "mixed.txt").read_text(encoding="utf-8")[:200_000]
    assert cached.encode(text) == reference.encode(text)
    assert cached.pieces() == reference.pieces()
