"""``TokenDataset``: documents, token windows across shard boundaries and training windows of an
encoded corpus, against the ids ``encode_batch`` gives; and the checks that refuse a corpus whose
files are not the ones its manifest lists."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece import TokenDataset, Tokenizer, encode_corpus
from bytepiece.errors import InputError, ModelFormatError

DOCS = [("abcd ab 中文 " * (i % 9)) + f"doc {i}" * (i % 2) for i in range(400)]  # some documents are empty


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_tokenizer):
    """(directory, reference ids per document) of a corpus of many small shards."""
    directory = tmp_path_factory.mktemp("dataset")
    encode_corpus(DOCS, tiny_tokenizer, directory / "c", shard_size="1K")
    return directory, [np.asarray(ids) for ids in tiny_tokenizer.encode_batch(DOCS)]


@pytest.fixture(scope="module")
def flat(corpus):
    return np.concatenate(corpus[1])


def test_documents_match_encode_batch(corpus):
    directory, reference = corpus
    ds = TokenDataset(directory / "c")
    assert len(ds.shards) > 10 and len(ds) == len(DOCS) and ds.n_tokens == sum(map(len, reference))
    assert all(np.array_equal(ds[i], reference[i]) for i in range(len(DOCS)))
    assert np.array_equal(ds[-1], reference[-1]) and ds[0].dtype == np.dtype("<u2")
    assert [d.tolist() for d in ds.documents(37, 251)] == [r.tolist() for r in reference[37:251]]
    with pytest.raises(IndexError, match="document 400 is out of range"):
        ds.document(len(DOCS))
    with pytest.raises(InputError, match="must be an integer"):
        ds.document(1.5)


@given(st.integers(-450, 450), st.one_of(st.none(), st.integers(-450, 450)))
@settings(max_examples=80, deadline=None)
def test_documents_take_their_bounds_as_a_slice(corpus, start, stop):
    """Audit: ``documents(-5)`` gave the first documents (a negative start counted from 0)."""
    directory, reference = corpus
    with TokenDataset(directory / "c") as ds:
        assert [d.tolist() for d in ds.documents(start, stop)] == [r.tolist() for r in reference[start:stop]]


def test_bad_arguments_to_the_readers_are_input_errors(corpus):
    """Audit: these raised bare TypeErrors from Python or numpy; ``batches(0)`` was accepted."""
    directory, _ = corpus
    with TokenDataset(directory / "c") as ds:
        for call in (lambda: ds.tokens(1.5, 3), lambda: ds.tokens(None, 3), lambda: ds.documents("a"),
                     lambda: ds.documents(0, 2.0), lambda: ds.batches("a")):
            with pytest.raises(InputError, match="must be an integer"):
                call()
        for size in (0, -1):
            with pytest.raises(InputError, match="max_tokens must be a positive number of tokens"):
                ds.batches(size)


@settings(max_examples=60)
@given(st.data())
def test_token_windows_cross_shard_boundaries(corpus, flat, data):
    directory, _ = corpus
    ds = TokenDataset(directory / "c", max_open=3)
    start = data.draw(st.integers(0, len(flat)))
    stop = data.draw(st.integers(start, min(len(flat), start + 3000)))
    assert np.array_equal(ds.tokens(start, stop), flat[start:stop])
    assert len(ds._open) <= 3


def test_tokens_outside_the_corpus(corpus, flat):
    ds = TokenDataset(corpus[0] / "c")
    for start, stop in ((-1, 3), (5, 4), (0, len(flat) + 1)):
        with pytest.raises(IndexError, match="outside the corpus"):
            ds.tokens(start, stop)


def test_training_windows(corpus, flat):
    ds = TokenDataset(corpus[0] / "c")
    x, y = ds.windows(64, 50, seed=3)
    assert x.shape == y.shape == (64, 50) and x.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    starts = np.random.default_rng(3).integers(0, len(flat) - 50, size=64)
    for row, s in enumerate(starts):
        assert np.array_equal(x[row], flat[s:s + 50]) and y[row, -1] == flat[s + 50]
    again, _ = ds.windows(64, 50, seed=np.random.default_rng(3))
    assert np.array_equal(again, x)
    with pytest.raises(InputError, match="need at least"):
        ds.windows(1, len(flat))
    with pytest.raises(InputError, match="length must be a positive integer"):
        ds.windows(1, 0)


@pytest.mark.parametrize("batch_size,length", [(7, 50), (1, 13), (32, 1)])
def test_epoch_windows_read_each_token_once(corpus, flat, batch_size, length, monkeypatch):
    """One epoch: consecutive windows from an offset below ``length``, shuffled; every input
    position from the offset on is read exactly once, except those of the partial last batch."""
    ds = TokenDataset(corpus[0] / "c")
    reads: list[tuple[int, int]] = []
    read = ds.tokens
    monkeypatch.setattr(ds, "tokens", lambda a, b: reads.append((a, b)) or read(a, b))
    batches = list(ds.epoch_windows(batch_size, length, seed=5))
    starts = [a for a, _ in reads]
    assert all(b == a + length + 1 for a, b in reads) and len(reads) == len(batches) * batch_size
    seen = np.zeros(len(flat), dtype=np.int64)
    for k, (x, y) in enumerate(batches):
        assert x.shape == y.shape == (batch_size, length) and x.dtype == np.int64
        for row in range(batch_size):
            s = starts[k * batch_size + row]
            assert np.array_equal(x[row], flat[s: s + length]) and np.array_equal(y[row], flat[s + 1: s + length + 1])
            seen[s: s + length] += 1
    offset = min(starts) % length
    assert offset < length and len({s % length for s in starts}) == 1  # one offset
    assert len(batches) == (len(flat) - 1 - offset) // length // batch_size  # only the partial batch is left out
    assert seen.max() == 1 and starts != sorted(starts)  # each position once, in shuffled order
    again = [x for x, _ in ds.epoch_windows(batch_size, length, seed=np.random.default_rng(5))]
    assert all(np.array_equal(a, x) for a, (x, _) in zip(again, batches))
    with pytest.raises(InputError, match="need at least"):
        next(ds.epoch_windows(1, len(flat)))
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        next(ds.epoch_windows(0, 3))

def _copy_corpus(corpus, tmp_path):
    directory, _ = corpus
    for p in directory.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    return tmp_path / "c"


def _edit_manifest(prefix, edit):
    path = prefix.with_name(prefix.name + ".manifest.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name, message", [
    ("../outside.bin", "not a plain name"),
    ("/etc/passwd", "not a plain name"),
    ("sub/../../x.bin", "not a plain name"),
    ("C:\\x.bin", "not a plain name"),
])
def test_shard_paths_must_stay_in_the_directory(corpus, tmp_path, name, message):
    prefix = _copy_corpus(corpus, tmp_path)

    def edit(data):
        data["shards"][0]["file"] = name

    _edit_manifest(prefix, edit)
    with pytest.raises(ModelFormatError, match=message):
        TokenDataset(prefix)


def test_symlinked_shard_leaving_the_directory_is_refused(corpus, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    prefix = _copy_corpus(corpus, inner)
    outside = tmp_path / "elsewhere.bin"
    shard = inner / "c-00000.bin"
    outside.write_bytes(shard.read_bytes())
    shard.unlink()
    os.symlink(outside, shard)
    with pytest.raises(ModelFormatError, match="outside"):
        TokenDataset(prefix)


def test_sizes_are_checked_at_open(corpus, tmp_path):
    prefix = _copy_corpus(corpus, tmp_path)
    shard = tmp_path / "c-00003.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ModelFormatError, match="c-00003.bin has .* bytes but c.manifest.json expects"):
        TokenDataset(prefix)
    shard.unlink()
    with pytest.raises(ModelFormatError, match="c-00003.bin is missing"):
        TokenDataset(prefix)


def test_counts_must_add_up(corpus, tmp_path):
    prefix = _copy_corpus(corpus, tmp_path)

    def edit(data):
        data["n_tokens"] += 1

    _edit_manifest(prefix, edit)
    with pytest.raises(ModelFormatError, match="n_tokens is .* but its shards add up to"):
        TokenDataset(prefix)


def test_probe_and_full_hashes(tmp_path, tiny_tokenizer):
    text = "abcd ab 中文 xyz " * 20000  # one document of a few hundred KB of tokens
    encode_corpus([text, "second"], tiny_tokenizer, tmp_path / "big")
    shard = tmp_path / "big-00000.bin"
    original = shard.read_bytes()
    assert len(original) > 4 * 64 * 1024
    ds = TokenDataset(tmp_path / "big", verify=True)
    assert ds.n_documents == 2
    # a changed token inside a probed block: caught on first access, before any tokens are returned
    changed = bytearray(original)
    changed[10] ^= 1
    shard.write_bytes(bytes(changed))
    ds = TokenDataset(tmp_path / "big")
    with pytest.raises(ModelFormatError, match="probe hash"):
        ds.document(0)
    # a change between the probed blocks: only the full hash sees it
    changed = bytearray(original)
    changed[len(original) // 4] ^= 1
    shard.write_bytes(bytes(changed))
    assert TokenDataset(tmp_path / "big").document(1).size > 0
    with pytest.raises(ModelFormatError, match="does not match the sha256"):
        TokenDataset(tmp_path / "big", verify=True)


def test_index_of_another_shard_is_refused(corpus, tmp_path):
    prefix = _copy_corpus(corpus, tmp_path)
    ds = TokenDataset(prefix)
    indexes = [tmp_path / s.index_file(ds.manifest.layout) for s in ds.shards]
    pairs = [(i, j) for i in range(len(indexes)) for j in range(i + 1, len(indexes))
             if indexes[i].stat().st_size == indexes[j].stat().st_size
             and indexes[i].read_bytes() != indexes[j].read_bytes()]
    assert pairs, "the corpus fixture should have two shards with as many documents"
    i, j = pairs[0]
    data_i, data_j = indexes[i].read_bytes(), indexes[j].read_bytes()
    indexes[i].write_bytes(data_j)
    indexes[j].write_bytes(data_i)
    ds = TokenDataset(prefix)  # sizes agree, so opening succeeds
    with pytest.raises(ModelFormatError, match="probe hash"):
        ds.document(int(ds.document_starts[i]))  # the first document of shard i


def test_model_check(corpus, tiny_tokenizer):
    directory, _ = corpus
    TokenDataset(directory / "c", model=tiny_tokenizer)
    other = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"ab": 3})
    with pytest.raises(ModelFormatError, match="encoded with another model"):
        TokenDataset(directory / "c", model=other)


def test_ways_to_name_a_corpus(corpus, tmp_path):
    directory, _ = corpus
    n = TokenDataset(directory / "c").n_tokens
    assert TokenDataset(directory / "c.manifest.json").n_tokens == n
    assert TokenDataset(directory).n_tokens == n  # the only manifest in it
    with pytest.raises(ModelFormatError, match="no encoded corpus at"):
        TokenDataset(tmp_path / "nothing")
    with pytest.raises(ModelFormatError, match="holds no manifest"):
        TokenDataset(tmp_path)
    (tmp_path / "a.manifest.json").write_text("{}")
    (tmp_path / "b.manifest.json").write_text("{}")
    with pytest.raises(ModelFormatError, match="holds 2 manifests"):
        TokenDataset(tmp_path)
    with pytest.raises(ModelFormatError, match="not a bytepiece-corpus manifest"):
        TokenDataset(tmp_path / "a")
    (tmp_path / "a.manifest.json").write_text("{oops")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        TokenDataset(tmp_path / "a")


# -- damaged shards whose manifest hashes match (issue 18, item 10) ------------------------------
def _rehash(prefix, k: int) -> None:
    """Make the manifest's hashes of shard ``k`` match its files again (a forger's manifest)."""
    from bytepiece.tokens.manifest import file_sha256, probe_sha256

    def edit(data):
        entry = data["shards"][k]
        for field, probe, file in (("sha256", "probe_sha256", entry["file"]),
                                   ("index_sha256", "index_probe_sha256", entry["file"] + ".idx")):
            entry[field] = file_sha256(prefix.parent / file)
            entry[probe] = probe_sha256(prefix.parent / file)

    _edit_manifest(prefix, edit)


def _small_corpus(tmp_path, tiny_tokenizer):
    encode_corpus(["x" * 40, "abcd", "ab"], tiny_tokenizer, tmp_path / "f")  # a vocabulary of 268 ids
    return tmp_path / "f"


def _forge(prefix, *, ids=None, offsets=None) -> None:
    """Rewrite shard 0's ids or offsets and the manifest's hashes to match them."""
    if ids is not None:
        prefix.with_name("f-00000.bin").write_bytes(np.asarray(ids, dtype="<u2").tobytes())
    if offsets is not None:
        prefix.with_name("f-00000.bin.idx").write_bytes(np.asarray(offsets, dtype="<i8").tobytes())
    _rehash(prefix, 0)


def test_verify_checks_ids_against_the_vocabulary(tmp_path, tiny_tokenizer):
    prefix = _small_corpus(tmp_path, tiny_tokenizer)
    n = TokenDataset(prefix).n_tokens
    ids = np.array(TokenDataset(prefix).tokens(0, n))
    ids[n - 1] = 65535
    _forge(prefix, ids=ids)
    assert TokenDataset(prefix)[2][-1] == 65535  # without verify: ids are the caller's to check
    with pytest.raises(ModelFormatError, match=f"token {n - 1} has id 65535, outside the vocabulary"):
        TokenDataset(prefix, verify=True)


def test_offsets_that_go_back_are_refused_on_first_use(tmp_path, tiny_tokenizer):
    prefix = _small_corpus(tmp_path, tiny_tokenizer)
    offsets = np.fromfile(prefix.with_name("f-00000.bin.idx"), dtype="<i8")
    offsets[1], offsets[2] = offsets[2], offsets[1]  # same ends, same size, hashes rewritten
    _forge(prefix, offsets=offsets)
    for verify in (False, True):
        with pytest.raises(ModelFormatError, match="offsets decrease at document 1"):
            TokenDataset(prefix, verify=verify)[0]


# -- manifests with impossible numbers (issue 18, item 26) ---------------------------------------
@pytest.mark.parametrize("field, value, message", [
    ("n_documents", 10**30, "n_documents .* each must be a count from 0 to 2\\*\\*62 - 1"),
    ("n_tokens", 2**63 + 5, "n_tokens .* each must be a count"),
    ("n_tokens", 2**62 - 1, "shards' n_tokens add up to .* more than 2\\*\\*63 - 1"),
])
def test_manifest_counts_out_of_range(corpus, tmp_path, field, value, message):
    prefix = _copy_corpus(corpus, tmp_path)

    def edit(data):
        for shard in data["shards"][:4]:
            shard[field] = value
        data[field] = sum(s[field] for s in data["shards"])

    _edit_manifest(prefix, edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy used to warn (overflow) on 2**63 + 5
        with pytest.raises(ModelFormatError, match=message):
            TokenDataset(prefix)


@pytest.mark.parametrize("value", [10**30, 65537, 0, True])
def test_manifest_vocabulary_larger_than_its_ids_can_hold(corpus, tmp_path, value):
    """A crafted vocab_size would make verify's id check pass anything: it must fit the token type."""
    prefix = _copy_corpus(corpus, tmp_path)
    _edit_manifest(prefix, lambda data: data.update(vocab_size=value))
    with pytest.raises(ModelFormatError, match="vocab_size must be an integer from 1 to 65536 for uint16 ids"):
        TokenDataset(prefix, verify=True)


def test_deeply_nested_manifest(tmp_path):
    (tmp_path / "c.manifest.json").write_text('{"format": "bytepiece-corpus", "inputs": ' + "[" * 100_000)
    with pytest.raises(ModelFormatError, match="nested too deeply"):
        TokenDataset(tmp_path / "c")


# -- pickling, for spawn-based loader workers (issue 18, item 27) ---------------------------------
def _worker_documents(dataset: TokenDataset, indexes: list[int]) -> list[list[int]]:
    return [dataset[i].tolist() for i in indexes]


def test_pickles_by_path_and_options(corpus):
    directory, reference = corpus
    ds = TokenDataset(directory / "c", max_open=3, verify=True)
    ds[5]
    data = pickle.dumps(ds)
    assert len(data) < 2000, "the memory maps are not pickled"
    copy = pickle.loads(data)
    assert copy.max_open == 3 and copy.path == ds.path.absolute() and len(copy) == len(ds)
    assert all(np.array_equal(copy[i], reference[i]) for i in (0, 5, len(reference) - 1))
    single = TokenDataset(directory / "c-00000.bin")  # a single token file pickles the same way
    assert np.array_equal(pickle.loads(pickle.dumps(single))[0], single[0])


def test_spawned_workers_read_the_dataset(corpus):
    """A real ``spawn`` pool (what PyTorch's DataLoader uses on macOS, or with
    multiprocessing_context="spawn"): the dataset goes to fresh interpreters by pickle."""
    directory, reference = corpus
    ds = TokenDataset(directory / "c")
    chunks = [list(range(k, len(reference), 4)) for k in range(4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap_async(_worker_documents, [(ds, chunk) for chunk in chunks]).get(timeout=120)
    for chunk, docs in zip(chunks, results):
        assert docs == [reference[i].tolist() for i in chunk]


def test_unpickling_refuses_a_changed_manifest(corpus, tmp_path):
    prefix = _copy_corpus(corpus, tmp_path)
    data = pickle.dumps(TokenDataset(prefix))

    def edit(manifest):
        manifest["stats"] = {"changed": True}

    _edit_manifest(prefix, edit)
    with pytest.raises(ModelFormatError, match="changed since this dataset was pickled"):
        pickle.loads(data)
