"""Files that bytepiece reads, planted by someone else: a FIFO in place of any of them is refused
at once (never waited on, even while a lock is held), and reading never acts on a commit journal
found beside the file (issue 18, items 1 and 2).

Every operation that could hang runs in a child process with a timeout, so a regression fails
the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bytepiece import TokenDataset, Tokenizer, encode_corpus
from bytepiece.errors import ModelFormatError
from bytepiece.tokens.binfile import BinWriter, open_bin
from bytepiece.tokens.formats import open_token_file
from bytepiece.tokens.npyfile import NpyWriter, open_npy
from bytepiece.model import load_model

TIMEOUT = 30  # seconds; each child does a second of work at most


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a child that blocks fails the test instead of hanging it."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {TIMEOUT} s: a read blocked on a FIFO")


def _cli(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "bytepiece_cli.app", *map(str, args)], capture_output=True,
                              text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {TIMEOUT} s: a read blocked on a FIFO")


def _replace_with_fifo(path) -> None:
    path.unlink()
    os.mkfifo(path)


def _refused(done: subprocess.CompletedProcess, *, cli: bool = False) -> None:
    """One clear error that names a FIFO, no traceback."""
    if cli:
        assert done.returncode == 1, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        text = done.stderr
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        text = done.stdout
    assert "FIFO" in text and "not a regular file" in text and "Traceback" not in done.stderr, text + done.stderr


# -- sharded corpora (TokenDataset, decode of a manifest) ---------------------------------------
def _empty_shard(tmp_path, tiny_tokenizer):
    """A one-shard corpus of one empty document: its .bin has 0 bytes, as a FIFO's size reads."""
    encode_corpus([""], tiny_tokenizer, tmp_path / "e")
    shard = tmp_path / "e-00000.bin"
    assert shard.stat().st_size == 0
    return tmp_path / "e", shard


DATASET_CODE = """
import sys
from bytepiece import TokenDataset
from bytepiece.errors import ModelFormatError
try:
    ds = TokenDataset(sys.argv[1])
    print(ds[0])
except ModelFormatError as e:
    print(e)
"""


def test_fifo_shard_with_no_tokens_is_refused(tmp_path, tiny_tokenizer):
    prefix, shard = _empty_shard(tmp_path, tiny_tokenizer)
    _replace_with_fifo(shard)
    _refused(_child(DATASET_CODE, prefix))


def test_fifo_shard_is_refused_even_after_opening(tmp_path, tiny_tokenizer):
    """Replaced after the size check at open: the first access still does not block (it used
    to, inside the dataset's lock, in ``probe_sha256``)."""
    prefix, shard = _empty_shard(tmp_path, tiny_tokenizer)
    code = """
    import os, sys
    from bytepiece import TokenDataset
    from bytepiece.errors import ModelFormatError
    ds = TokenDataset(sys.argv[1])
    os.unlink(sys.argv[2]); os.mkfifo(sys.argv[2])
    try:
        ds[0]
    except ModelFormatError as e:
        print(e)
    """
    _refused(_child(code, prefix, shard))


@pytest.mark.parametrize("which", ["c-00000.bin.idx", "c.manifest.json"])
def test_fifo_index_or_manifest_is_refused(tmp_path, tiny_tokenizer, which):
    encode_corpus(["abcd ab", "中文"], tiny_tokenizer, tmp_path / "c")
    target = tmp_path / which
    if which.endswith(".idx"):  # a FIFO of the index's size cannot be made: planted after the open
        code = DATASET_CODE.replace("ds = TokenDataset(sys.argv[1])",
                                    "ds = TokenDataset(sys.argv[1]); import os; os.unlink(sys.argv[2]); "
                                    "os.mkfifo(sys.argv[2])")
        _refused(_child(code, tmp_path / "c", target))
    else:
        _replace_with_fifo(target)
        _refused(_child(DATASET_CODE, tmp_path / "c"))


def test_decode_of_a_corpus_with_a_fifo_shard(tmp_path, tiny_tokenizer, tiny_model_file):
    prefix, shard = _empty_shard(tmp_path, tiny_tokenizer)
    _replace_with_fifo(shard)
    _refused(_cli("decode", "-m", tiny_model_file, prefix.with_name("e.manifest.json")), cli=True)


def test_verify_does_not_block_on_a_fifo(tmp_path, tiny_tokenizer):
    prefix, shard = _empty_shard(tmp_path, tiny_tokenizer)
    code = """
    import os, sys
    from bytepiece import TokenDataset
    from bytepiece.errors import ModelFormatError
    ds = TokenDataset(sys.argv[1])
    os.unlink(sys.argv[2]); os.mkfifo(sys.argv[2])
    try:
        ds.verify()
    except ModelFormatError as e:
        print(e)
    """
    _refused(_child(code, prefix, shard))


# -- single token files (.bin + .idx + .json, .npy + .offsets.npy) -------------------------------
OPEN_CODE = """
import sys
from bytepiece.errors import ModelFormatError
from bytepiece.tokens.formats import open_token_file
try:
    print(open_token_file(sys.argv[1]))
except ModelFormatError as e:
    print(e)
"""


@pytest.mark.parametrize("member", [".json", ".idx", ""])
def test_fifo_member_of_a_bin_file(tmp_path, tiny_tokenizer, tiny_model_file, member):
    path = tmp_path / "x.bin"
    with BinWriter(path, tiny_tokenizer) as w:
        w.write_documents([[] if member == "" else [5, 6]])  # empty: the .bin is a FIFO's size
    _replace_with_fifo(tmp_path / ("x.bin" + member))
    _refused(_child(OPEN_CODE, path))
    _refused(_cli("decode", "-m", tiny_model_file, path), cli=True)


@pytest.mark.parametrize("member", ["ids.npy", "ids.offsets.npy"])
def test_fifo_member_of_an_npy_file(tmp_path, member):
    with NpyWriter(tmp_path / "ids.npy", vocab_size=300) as w:
        w.write([5, 6, 7], [0, 2, 3])
    _replace_with_fifo(tmp_path / member)
    code = OPEN_CODE.replace("open_token_file(sys.argv[1])", "open_npy(sys.argv[1])").replace(
        "tokens.formats import open_token_file", "tokens.npyfile import open_npy")
    _refused(_child(code, tmp_path / "ids.npy"))


def test_devices_and_directories_as_token_files(tmp_path, tiny_tokenizer):
    path = tmp_path / "x.bin"
    with BinWriter(path, tiny_tokenizer) as w:
        w.write_documents([[5, 6]])
    (tmp_path / "x.bin.idx").unlink()
    (tmp_path / "x.bin.idx").mkdir()
    with pytest.raises(ModelFormatError, match="is a directory, not a regular file"):
        open_bin(path)
    (tmp_path / "x.bin.idx").rmdir()
    os.symlink("/dev/zero", tmp_path / "x.bin.idx")
    with pytest.raises(ModelFormatError, match="character device, not a regular file"):
        open_token_file(path)
    with pytest.raises(ModelFormatError, match="is missing"):
        open_npy(tmp_path / "none.npy")


# -- models and sidecars ---------------------------------------------------------------------------
def test_fifo_model_sidecar_is_ignored(tmp_path, tiny_tokenizer):
    path = tmp_path / "m.model"
    tiny_tokenizer.save(path)
    sidecar = tmp_path / "m.model.meta.json"
    if sidecar.exists():
        sidecar.unlink()
    os.mkfifo(sidecar)
    code = """
    import sys
    from bytepiece import Tokenizer, load_model
    print(load_model(sys.argv[1]).metadata, Tokenizer(sys.argv[1]).encode("abcd"))
    """
    done = _child(code, path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "{}" and str(tiny_tokenizer.encode("abcd")) in done.stdout


def test_fifo_sentencepiece_model_is_refused(tmp_path):
    fifo = tmp_path / "m.spm"
    os.mkfifo(fifo)
    code = """
    import sys
    from bytepiece.errors import ModelFormatError
    from bytepiece.interop.sentencepiece import import_sentencepiece
    try:
        import_sentencepiece(sys.argv[1])
    except ModelFormatError as e:
        print(e)
    """
    _refused(_child(code, fifo))


def test_fifo_hf_tokenizer_json_is_refused(tmp_path):
    fifo = tmp_path / "tokenizer.json"
    os.mkfifo(fifo)
    code = """
    import sys
    from bytepiece.errors import ModelFormatError
    from bytepiece.interop.hf import import_hf
    try:
        import_hf(sys.argv[1])
    except ModelFormatError as e:
        print(e)
    """
    _refused(_child(code, fifo))


# -- reading never recovers (item 1, reading half) -------------------------------------------------
def _plant_journal(directory, name, victim) -> None:
    """The journal of the issue: a "pending commit" of ``name`` whose op removes ``victim``."""
    journal = directory / f".{name}.bytepiece-commit"
    record = {"format": "bytepiece-commit", "id": "x", "ops": [{"op": "remove", "target": str(victim)}],
              "markers": [str(victim.parent / f".{victim.name}.bytepiece-commit"), str(journal)]}
    journal.write_text(json.dumps(record))


def test_reading_never_acts_on_a_planted_journal(tmp_path, tiny_tokenizer, monkeypatch):
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", "")  # a cold load every time
    victim = tmp_path / "victim.txt"
    evil = tmp_path / "evil"
    evil.mkdir()
    tiny_tokenizer.save(evil / "m.model")
    with BinWriter(evil / "corpus.bin", tiny_tokenizer) as w:
        w.write_documents([[5, 6]])
    with NpyWriter(evil / "ids.npy", vocab_size=300) as w:
        w.write([5, 6], [0, 2])
    tiny_tokenizer.to_sentencepiece(evil / "m.spm")
    from bytepiece.interop.sentencepiece import import_sentencepiece

    reads = {
        "m.model": lambda: (load_model(evil / "m.model"), Tokenizer(evil / "m.model")),
        "m.model.meta.json": lambda: load_model(evil / "m.model"),
        "corpus.bin": lambda: open_bin(evil / "corpus.bin", verify=True),
        "corpus.bin.idx": lambda: open_token_file(evil / "corpus.bin"),
        "ids.npy": lambda: open_npy(evil / "ids.npy"),
        "m.spm": lambda: import_sentencepiece(evil / "m.spm"),
    }
    for name, read in reads.items():
        victim.write_text("precious")
        _plant_journal(evil, name, victim)
        read()
        assert victim.read_text() == "precious", f"reading {name} acted on a planted journal"
        assert (evil / f".{name}.bytepiece-commit").exists(), "a reader leaves journals alone"


def test_reading_never_recovers_a_sharded_corpus(tmp_path, tiny_tokenizer, tiny_model_file):
    encode_corpus(["abcd ab", "中文"], tiny_tokenizer, tmp_path / "c")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("c.manifest.json", "c-00000.bin"):
        _plant_journal(tmp_path, name, victim)
    ds = TokenDataset(tmp_path / "c", verify=True)
    assert ds[1].size > 0
    done = _cli("decode", "-m", tiny_model_file, tmp_path / "c.manifest.json")
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious"
