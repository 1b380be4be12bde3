"""The on-disk cache of model arrays: hits, and every kind of bad entry still giving correct ids."""

from __future__ import annotations

import hmac
import json
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece.io import secret
from bytepiece.tokenizer import cache, loading
from bytepiece.model import Model

TEXTS = ["abcd abcab 中文 aab", "", "\n\nab\ncd  ", "x" * 300]


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("BYTEPIECE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    secret.forget()
    yield tmp_path / "xdg" / "bytepiece"
    secret.forget()


def _key(cache_home) -> bytes | None:
    secret.forget()
    return secret.key()


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

    monkeypatch.setattr(loading, "build_arrays", no_build)
    second = Tokenizer(model_file)
    _same_behaviour(second, tiny_tokenizer)
    _same_behaviour(first, tiny_tokenizer)
    assert second.model.pieces == tiny_tokenizer.model.pieces
    assert np.array_equal(second.model.counts, tiny_tokenizer.model.counts)
    monkeypatch.undo()
    restored = pickle.loads(pickle.dumps(second))  # pickles a reference to the file, reloaded through the cache
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


def test_out_of_bounds_arrays_with_a_valid_mac_are_refused(cache_home, model_file, tiny_tokenizer):
    """An entry that passes its HMAC but holds bad indexes (a bug, or a key that leaked) must
    still not reach the kernels, which do not check bounds."""
    sha = cache.model_sha256(model_file.read_bytes())
    arrays = loading.build_arrays(Tokenizer(model_file).model)
    for field, bad in [("base_check", 10**6), ("pair", 10**6), ("piece", 10**6), ("base_check", -5)]:
        values = np.array(getattr(arrays, field))
        values[-1] = bad
        entry = cache.entry_path(cache_home, sha)
        cache.store(entry, sha, arrays._replace(**{field: values}), {})
        assert cache.load_cached(entry, sha) is None
        _same_behaviour(Tokenizer(model_file), tiny_tokenizer)


@pytest.mark.parametrize("field, value", [("format", 0), ("bytepiece", "0.0.0"), ("model_sha256", "0" * 64)])
def test_stale_header_is_refused(cache_home, model_file, field, value):
    """A stale header is refused even in an entry signed with this user's key."""
    sha = cache.model_sha256(model_file.read_bytes())
    Tokenizer(model_file)
    key = _key(cache_home)
    entry = cache.entry_path(cache_home, sha)
    raw = np.load(entry, allow_pickle=False)
    start = 32 + 8  # after the HMAC and the header length
    length = int.from_bytes(raw[32:start].tobytes(), "little")
    header = json.loads(raw[start : start + length].tobytes())
    header[field] = value
    new = json.dumps(header).encode().ljust(length)
    raw[start : start + length] = np.frombuffer(new[:length], dtype=np.uint8)
    raw[:32] = np.frombuffer(hmac.new(key, cache.MAC_CONTEXT + raw[32:].tobytes(), "sha256").digest(), dtype=np.uint8)
    np.save(entry, raw)
    assert cache.load_cached(entry, sha) is None


def _other_counts_model(path, tiny_tokenizer) -> Tokenizer:
    """The pieces of ``tiny_tokenizer`` with other counts: the same trie, other ids for 'abcd'."""
    model = tiny_tokenizer.model
    counts = {p: int(c) for p, c in zip(model.pieces, model.counts)}
    counts.update({b"abcd": 1, b"ab": 1, b"abc": 1, b"cd": 1, b"bc": 1, b"a": 1000, b"b": 1000, b"c": 1000, b"d": 1000})
    Model.from_counts(counts).save(path)
    return Tokenizer(path)


def test_crafted_entry_cannot_change_the_ids(cache_home, model_file, tmp_path, tiny_tokenizer):
    """Someone who can write the cache directory plants an entry for this model that holds the
    arrays of another model (same pieces, other scores; well formed, every unkeyed checksum
    right, the header naming this model): it must not be used."""
    other_path = tmp_path / "other.model"
    other = _other_counts_model(other_path, tiny_tokenizer)
    assert other.encode("abcd") != tiny_tokenizer.encode("abcd")
    Tokenizer(model_file)
    mine = cache.model_sha256(model_file.read_bytes())
    theirs = cache.model_sha256(other_path.read_bytes())
    entries = {e.name.split(".")[0]: e for e in _entries(cache_home)}
    crafted = entries[theirs].read_bytes().replace(theirs.encode(), mine.encode())
    entries[mine].write_bytes(crafted)
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)


def test_entry_signed_with_another_key_is_refused(cache_home, model_file, tmp_path, tiny_tokenizer):
    """Another user's cache (their own key) made an entry under this model's name: well formed
    and signed, but not with this user's key."""
    other = _other_counts_model(tmp_path / "other.model", tiny_tokenizer)
    sha = cache.model_sha256(model_file.read_bytes())
    entry = cache.entry_path(cache_home, sha)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(secret, "key", lambda: b"k" * 32)  # the other user's key
        cache.store(entry, sha, loading.build_arrays(other.model), {})
    key = _key(cache_home)
    assert key is not None and key != b"k" * 32
    assert cache.load_cached(entry, sha) is None
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert cache.load_cached(entry, sha) is not None, "the refused entry is replaced by a valid one"


def test_entry_others_can_write_is_rebuilt(cache_home, model_file, tiny_tokenizer, monkeypatch):
    Tokenizer(model_file)
    (entry,) = _entries(cache_home)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    entry.chmod(0o666)
    built = []
    monkeypatch.setattr(loading, "build_arrays", lambda model, real=loading.build_arrays: built.append(1) or real(model))
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert built == [1] and stat.S_IMODE(entry.stat().st_mode) == 0o600


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root")
def test_entry_of_another_user_is_rebuilt(cache_home, model_file, tiny_tokenizer, monkeypatch):
    Tokenizer(model_file)
    (entry,) = _entries(cache_home)
    os.chown(entry, 12345, 12345)
    built = []
    monkeypatch.setattr(loading, "build_arrays", lambda model, real=loading.build_arrays: built.append(1) or real(model))
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert built == [1] and entry.stat().st_uid == os.geteuid()


def test_key_is_private_and_made_once(cache_home, model_file):
    Tokenizer(model_file)
    key_file = cache_home / secret.KEY_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_size == 32
    key = key_file.read_bytes()
    Tokenizer(model_file)
    assert key_file.read_bytes() == key
    assert sorted(p.name for p in cache_home.iterdir() if p.name.startswith(".")) == [], "no temporary files left"


@pytest.mark.parametrize("problem", ["readable by others", "wrong size", "fifo", "directory"])
def test_untrusted_key_turns_the_cache_off(cache_home, model_file, tiny_tokenizer, monkeypatch, problem):
    """A key that others may have read (or that is not a key at all) signs nothing and accepts
    nothing: the cache is not used, and nothing waits on a FIFO."""
    cache_home.mkdir(parents=True, exist_ok=True)
    key_file = cache_home / secret.KEY_NAME
    key_file.unlink(missing_ok=True)  # saving the model file made one
    if problem == "fifo":
        os.mkfifo(key_file)
    elif problem == "directory":
        key_file.mkdir()
    else:
        key_file.write_bytes(b"k" * (32 if problem == "readable by others" else 31))
        key_file.chmod(0o644 if problem == "readable by others" else 0o600)
    assert _key(cache_home) is None
    built = []
    monkeypatch.setattr(loading, "build_arrays", lambda model, real=loading.build_arrays: built.append(1) or real(model))
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert built == [1, 1] and not _entries(cache_home)


def test_key_that_cannot_be_created_turns_the_cache_off(cache_home, model_file, tiny_tokenizer, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    (cache_home / secret.KEY_NAME).unlink(missing_ok=True)  # saving the model file made one
    secret.forget()
    monkeypatch.setattr(os, "link", no_links)
    _same_behaviour(Tokenizer(model_file), tiny_tokenizer)
    assert _key(cache_home) is None and not _entries(cache_home)
    assert [p.name for p in cache_home.iterdir()] == [], "the unlinked key is not left behind"


HANG_SCRIPT = """
import os, sys
from bytepiece import Tokenizer
print(Tokenizer(sys.argv[1]).encode("abcd abcab"))
"""


def _run_with_timeout(model_file, cache_home) -> subprocess.CompletedProcess:
    env = {**os.environ, "BYTEPIECE_CACHE_DIR": str(cache_home)}
    return subprocess.run([sys.executable, "-c", HANG_SCRIPT, str(model_file)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_fifo_at_the_entry_path_is_replaced_not_waited_on(cache_home, model_file, tiny_tokenizer):
    Tokenizer(model_file)
    (entry,) = _entries(cache_home)
    entry.unlink()
    os.mkfifo(entry)
    done = _run_with_timeout(model_file, cache_home)  # a regression blocks in open(): TimeoutExpired
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tiny_tokenizer.encode("abcd abcab"))
    assert stat.S_ISREG(entry.stat().st_mode), "the FIFO is replaced by a valid entry"


def test_fifo_as_the_sidecar_on_a_cache_hit_is_ignored(cache_home, model_file, tiny_tokenizer):
    Tokenizer(model_file)
    Tokenizer(model_file)
    assert _entries(cache_home)
    sidecar = model_file.parent / (model_file.name + ".meta.json")
    if sidecar.exists():
        sidecar.unlink()
    os.mkfifo(sidecar)
    done = _run_with_timeout(model_file, cache_home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tiny_tokenizer.encode("abcd abcab"))


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

    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
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
