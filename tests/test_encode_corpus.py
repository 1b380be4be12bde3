"""``bytepiece.encode_corpus`` and ``bytepiece encode --format bin``: documents in, shards and a
manifest out; round trips, plans that must not change the output, and faults that must not
leave partial output."""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import bytepiece.tokens.encode as encode_module
import bytepiece.tokens.sink as sink_module
from bytepiece import TokenDataset, Tokenizer, encode_corpus
from bytepiece.errors import InputError
from bytepiece.model import content_sha256 as model_sha256
from bytepiece.tokens.binfile import open_bin, read_meta
from bytepiece.tokens import encode_stream
from bytepiece_cli.app import app

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "data" / "default.model"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def documents(n: int = 120) -> list[str]:
    """Multi-line documents (source files, web pages) with text that NFC changes."""
    return [f"# file {i}\n" + "def f():\n    return 'cafe\u0301 中文'\n\n" * (i % 4) + "abcd ab" * (i % 3) + "\r\n" * (i % 2)
            for i in range(n)]


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({"id": i, field: d}, ensure_ascii=i % 2 == 0) + "\n" for i, d in enumerate(docs)),
                    encoding="utf-8")
    return path


def write_inputs(tmp_path: Path, kind: str, docs: list[str]) -> Path:
    if kind == "jsonl":
        return write_jsonl(tmp_path / "c.jsonl", docs)
    if kind == "jsonl.gz":
        raw = write_jsonl(tmp_path / "raw.jsonl", docs).read_bytes()
        (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(raw))
        return tmp_path / "c.jsonl.gz"
    if kind == "jsonl.zst":
        zstandard = pytest.importorskip("zstandard")
        raw = write_jsonl(tmp_path / "raw.jsonl", docs).read_bytes()
        (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
        return tmp_path / "c.jsonl.zst"
    if kind == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"text": docs}), tmp_path / "c.parquet", row_group_size=7)
        return tmp_path / "c.parquet"
    raise AssertionError(kind)


def corpus_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def leftovers(directory: Path) -> list[str]:
    """Temporary files or staging directories an encoding may leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".encoding-" in p.name)


def decoded(ds: TokenDataset, tokenizer: Tokenizer) -> list[str]:
    return [tokenizer.decode(ds[i]) for i in range(len(ds))]


@pytest.fixture(scope="module")
def default_tokenizer():
    return Tokenizer(DEFAULT_MODEL)


# -- round trips --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "jsonl.zst", "parquet"])
def test_round_trip_multiline_documents(tmp_path, default_tokenizer, kind):
    docs = documents()
    path = write_inputs(tmp_path, kind, docs)
    out = tmp_path / "out" / "corpus"
    out.parent.mkdir()
    summary = encode_corpus(path, DEFAULT_MODEL, out, shard_size="2K")
    ds = TokenDataset(out)
    assert len(ds.shards) > 1 and summary.files == [out.parent / s.file for s in ds.shards]
    assert decoded(ds, default_tokenizer) == [nfc(d) for d in docs]
    assert ds.n_documents == summary.n_documents == len(docs) and ds.n_tokens == summary.n_tokens
    manifest = json.loads((out.parent / "corpus.manifest.json").read_text())
    assert manifest["inputs"][0]["path"] == str(path)
    assert manifest["model"]["sha256"] == model_sha256(default_tokenizer.model)
    assert manifest["model"]["file"] == "default.model"
    assert leftovers(out.parent) == []


def test_text_lines_are_documents_and_inputs_mix(tmp_path, tiny_tokenizer):
    text = tmp_path / "a.txt"
    text.write_text("first line\nsecond abcd\n\nlast", encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "b.jsonl", ["multi\nline", "abc"])
    out = tmp_path / "mixed"
    encode_corpus([text, jsonl], tiny_tokenizer, out, add_bos=True, add_eos=True)
    ds = TokenDataset(out)
    assert [ds[i].tolist() for i in range(len(ds))] == tiny_tokenizer.encode_batch(
        ["first line", "second abcd", "", "last", "multi\nline", "abc"], add_bos=True, add_eos=True)
    manifest = ds.manifest
    assert [i["format"] for i in manifest.inputs] == ["text", "jsonl"]
    assert set(manifest.options["documents"]) == {"text", "jsonl"}


def test_texts_iterable_and_raw_normalization(tmp_path, tiny_tokenizer):
    texts = ["cafe\u0301", "plain"]
    encode_corpus(texts, tiny_tokenizer, tmp_path / "nfc")
    encode_corpus(texts, tiny_tokenizer, tmp_path / "raw", normalization="none")
    assert tiny_tokenizer.decode(TokenDataset(tmp_path / "nfc")[0]) == "café"
    assert tiny_tokenizer.decode(TokenDataset(tmp_path / "raw")[0]) == "cafe\u0301"
    assert TokenDataset(tmp_path / "raw").manifest.options["normalization"] == "none"


def test_shards_hold_at_most_the_shard_size(tmp_path, tiny_tokenizer):
    docs = documents(200) + ["x" * 5000]  # one document larger than a shard
    path = write_jsonl(tmp_path / "c.jsonl", docs)
    encode_corpus(path, tiny_tokenizer, tmp_path / "c", shard_size=4096, add_eos=True)
    ds = TokenDataset(tmp_path / "c")
    assert len(ds.shards) >= 4
    for shard in ds.shards:
        assert shard.n_tokens * 2 <= 4096 or shard.n_documents == 1
    flat = np.concatenate([ds[i] for i in range(len(ds))])
    expected = np.concatenate([np.asarray(ids) for ids in tiny_tokenizer.encode_batch(docs, add_eos=True)])
    assert np.array_equal(flat, expected)
    assert np.array_equal(ds.tokens(0, ds.n_tokens), expected)


def test_single_file_output_is_todays_bin(tmp_path, tiny_tokenizer):
    docs = documents(30)
    path = write_jsonl(tmp_path / "c.jsonl", docs)
    out = tmp_path / "c.bin"
    summary = encode_corpus(path, tiny_tokenizer, out, add_eos=True)
    assert summary.files == [out] and not (tmp_path / "c.bin.manifest.json").exists()
    tokens, offsets = open_bin(out)
    expected = tiny_tokenizer.encode_batch(docs, add_eos=True)
    assert [tokens[offsets[i]:offsets[i + 1]].tolist() for i in range(len(docs))] == expected
    assert read_meta(out)["metadata"]["add_eos"] is True and read_meta(out)["index"]["file"] == "c.bin.idx"
    ds = TokenDataset(out)
    assert ds.single_file and [ds[i].tolist() for i in range(len(ds))] == expected


def test_empty_corpus(tmp_path, tiny_tokenizer):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    summary = encode_corpus(path, tiny_tokenizer, tmp_path / "e")
    ds = TokenDataset(tmp_path / "e")
    assert summary.n_tokens == ds.n_tokens == len(ds) == 0 and ds.shards == []
    encode_corpus(path, tiny_tokenizer, tmp_path / "e.bin")
    assert open_bin(tmp_path / "e.bin")[1].tolist() == [0]


# -- plans ---------------------------------------------------------------------------------------------

def test_output_bytes_do_not_depend_on_threads_or_batches(tmp_path, tiny_tokenizer, monkeypatch):
    path = write_jsonl(tmp_path / "c.jsonl", documents(300))
    runs = []
    for name, workers, batch in (("one", 1, None), ("three", 3, 64)):
        directory = tmp_path / name
        directory.mkdir()
        if batch:
            monkeypatch.setattr(encode_module, "BATCH_BYTES", batch)
        encode_corpus(path, tiny_tokenizer, directory / "c", shard_size="1K", workers=workers, alpha=0.2, seed=11)
        runs.append(corpus_files(directory))
    assert runs[0] == runs[1] and len(runs[0]) > 6


def _sampled(tmp_path, tokenizer, path, name, alpha=0.1, **kwargs) -> list[list[int]]:
    out = tmp_path / name
    encode_corpus(path, tokenizer, out, alpha=alpha, **kwargs)
    ds = TokenDataset(out)
    return [ds[i].tolist() for i in range(len(ds))]


def test_sampling_is_per_document_whatever_the_plan(tmp_path, tiny_tokenizer, monkeypatch):
    """One seeding rule: document i of the input draws from stream i of the seed, whichever API,
    thread count, batch size or shard size encodes it (the Dask plan: tests/test_encode_dask.py)."""
    docs = ["abcdabcabc abcd\nabcab" * 3] * 40
    path = write_jsonl(tmp_path / "c.jsonl", docs)
    a = _sampled(tmp_path, tiny_tokenizer, path, "a", seed=5, shard_size="1K", workers=1)
    monkeypatch.setattr(encode_module, "BATCH_BYTES", 100)
    b = _sampled(tmp_path, tiny_tokenizer, path, "b", seed=5, shard_size="64K", workers=2)
    c = _sampled(tmp_path, tiny_tokenizer, path, "c", seed=6, shard_size="1K", workers=1)
    assert a == b
    assert a != c
    assert len({tuple(d) for d in a}) > 1  # equal documents, different streams: different samples
    assert all(tiny_tokenizer.decode(d) == docs[0] for d in a + c)
    streamed = [batch.ids[batch.offsets[i]:batch.offsets[i + 1]].tolist()
                for batch in encode_stream(path, tiny_tokenizer, alpha=0.1, seed=5) for i in range(len(batch.offsets) - 1)]
    assert streamed == a
    from bytepiece.tokens.npyfile import open_npy

    encode_corpus(path, tiny_tokenizer, tmp_path / "one.npy", format="npy", alpha=0.1, seed=5)  # one file: a stream
    tokens, offsets = open_npy(tmp_path / "one.npy")
    assert [tokens[x:y].tolist() for x, y in zip(offsets[:-1], offsets[1:])] == a
    for threads in (1, 2):
        assert tiny_tokenizer.encode_batch(docs, alpha=0.1, seed=5, num_threads=threads) == a
    assert tiny_tokenizer.encode(docs[0], alpha=0.1, seed=5) == a[0]


def test_sampling_with_special_tokens_keeps_the_streams(tmp_path):
    """A document cut at special tokens is still one stream: corpus encoding, encode_batch and
    encode give the same sample."""
    tok = Tokenizer.from_counts({**{bytes([b]): 1 + b % 5 for b in range(256)}, b"ab": 9, b"abc": 7, b"cab": 5},
                                special_tokens=["<s>"])
    docs = [f"abcab<s>cabc{i}<s><s>ab" for i in range(30)]
    path = write_jsonl(tmp_path / "s.jsonl", docs)
    out = tmp_path / "s"
    encode_corpus(path, tok, out, alpha=0.5, seed=3, allowed_special="all", shard_size="1K", workers=2)
    ds = TokenDataset(out)
    corpus = [ds[i].tolist() for i in range(len(ds))]
    assert corpus == tok.encode_batch(docs, alpha=0.5, seed=3, allowed_special="all")
    assert corpus[0] == tok.encode(docs[0], alpha=0.5, seed=3, allowed_special="all")
    assert all(tok.decode(ids) == doc for ids, doc in zip(corpus, docs))


def test_a_random_seed_is_drawn_and_recorded(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "c.jsonl", ["abcabcabcd"] * 10)
    summary = encode_corpus(path, tiny_tokenizer, tmp_path / "r", alpha=0.0)
    seed = TokenDataset(tmp_path / "r").manifest.options["seed"]
    assert isinstance(seed, int) and seed == summary.seed
    again = _sampled(tmp_path, tiny_tokenizer, path, "again", alpha=0.0, seed=seed)
    assert again == [TokenDataset(tmp_path / "r")[i].tolist() for i in range(10)]


# -- refusing and failing cleanly -------------------------------------------------------------------------

def test_refuses_to_replace_a_corpus_unless_overwrite(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "c.jsonl", documents(200))
    out = tmp_path / "out" / "c"
    out.parent.mkdir()
    encode_corpus(path, tiny_tokenizer, out, shard_size="1K")
    many = set(corpus_files(out.parent))
    with pytest.raises(FileExistsError, match="already holds a corpus named 'c'"):
        encode_corpus(path, tiny_tokenizer, out)
    encode_corpus(write_jsonl(tmp_path / "small.jsonl", ["ab"]), tiny_tokenizer, out, overwrite=True)
    assert set(corpus_files(out.parent)) == {"c.manifest.json", "c-00000.bin", "c-00000.bin.idx", "c-00000.bin.json"}
    assert len(many) > 8  # the old corpus's extra shards were removed, not left to look like part of it
    encode_corpus(path, tiny_tokenizer, out.parent / "other")  # another name in the same directory is fine


@pytest.mark.parametrize("args, error, message", [
    ({"shard_size": "lots"}, InputError, "shard_size must be a size"),
    ({"alpha": float("nan")}, InputError, "alpha must be finite"),
    ({"errors": "ignore"}, InputError, "errors must be 'replace' or 'strict'"),
    ({"cluster": "local:0"}, InputError, "positive number of worker processes"),
])
def test_bad_options(tmp_path, tiny_tokenizer, args, error, message):
    path = write_jsonl(tmp_path / "c.jsonl", ["ab"])
    with pytest.raises(error, match=message):
        encode_corpus(path, tiny_tokenizer, tmp_path / "o", **args)
    assert not (tmp_path / "o.manifest.json").exists() and leftovers(tmp_path) == []


def test_output_that_is_a_directory_or_missing(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "c.jsonl", ["ab"])
    with pytest.raises(InputError, match="is a directory; give a name prefix inside it"):
        encode_corpus(path, tiny_tokenizer, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        encode_corpus(path, tiny_tokenizer, tmp_path / "missing" / "c")


def test_bad_records_name_file_and_line(tmp_path, tiny_tokenizer):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"body": "c"}\n')
    with pytest.raises(InputError, match=r"c.jsonl: line 3 has no field 'text'"):
        encode_corpus(path, tiny_tokenizer, tmp_path / "o")
    with pytest.raises(InputError, match=r"line 1: field 'body' holds a int"):
        path.write_text('{"body": 3}\n')
        encode_corpus(path, tiny_tokenizer, tmp_path / "o", jsonl_field="body")
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.manifest.json").exists()


def test_invalid_utf8_is_counted_or_refused(tmp_path, tiny_tokenizer):
    path = tmp_path / "c.txt"
    path.write_bytes(b"ok\nbad \xff\xfe here\n")
    summary = encode_corpus(path, tiny_tokenizer, tmp_path / "o")
    assert summary.invalid_utf8 == 2 and TokenDataset(tmp_path / "o").manifest.stats["invalid_utf8"] == 2
    assert tiny_tokenizer.decode(TokenDataset(tmp_path / "o")[1]) == "bad \ufffd\ufffd here"
    with pytest.raises(InputError, match="c.txt: invalid UTF-8 at line 2"):
        encode_corpus(path, tiny_tokenizer, tmp_path / "strict", errors="strict")


class _Fault(Exception):
    pass


@pytest.mark.parametrize("fault", ["disk full", "interrupt", "bad record"])
def test_a_failed_run_leaves_the_previous_output_untouched(tmp_path, tiny_tokenizer, monkeypatch, fault):
    path = write_jsonl(tmp_path / "c.jsonl", documents(300))
    out = tmp_path / "out" / "c"
    out.parent.mkdir()
    encode_corpus(write_jsonl(tmp_path / "old.jsonl", ["previous corpus"]), tiny_tokenizer, out)
    before = corpus_files(out.parent)
    calls = {"n": 0}
    if fault == "disk full":
        real_write = sink_module.BinWriter.write

        def write(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 5:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(self, *args, **kwargs)

        monkeypatch.setattr(sink_module.BinWriter, "write", write)
        expected, message = InputError, "no space left on the device"
    elif fault == "interrupt":
        class Interrupting:
            def __init__(self, enabled=None):
                pass

            def status(self, message):
                import contextlib
                return contextlib.nullcontext()

            def phase(self, description, total=None):
                import contextlib

                def advance(n):
                    calls["n"] += 1
                    if calls["n"] == 3:
                        raise KeyboardInterrupt
                return contextlib.nullcontext(advance)

        monkeypatch.setattr(encode_module, "Progress", Interrupting)
        expected, message = KeyboardInterrupt, None
    else:
        with path.open("a") as f:
            f.write('{"text": 3}\n')
        expected, message = InputError, "line 301: field 'text' holds a int"
    with pytest.raises(expected, match=message):
        encode_corpus(path, tiny_tokenizer, out, shard_size="1K", workers=2, overwrite=True)
    deadline = time.monotonic() + 10
    while leftovers(out.parent) and time.monotonic() < deadline:  # tasks still running stop at their next batch
        time.sleep(0.05)
    assert leftovers(out.parent) == []
    assert corpus_files(out.parent) == before


def test_stale_staging_of_a_dead_run_is_removed(tmp_path, tiny_tokenizer):
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    host = socket.gethostname()
    stale = tmp_path / f".c.encoding-{host}-{proc.pid}-abc123"
    stale.mkdir()
    (stale / "part-00000-000.bin").write_bytes(b"\0" * 10)
    other = tmp_path / f".other.corpus.encoding-{host}-{proc.pid}-abc456"  # a killed run of another name
    other.mkdir()
    alive = tmp_path / f".c.encoding-{host}-{os.getpid()}-def456"
    alive.mkdir()
    mine = tmp_path / ".c.encoding-elsewhere-1-abc789"  # another host's: its pid means nothing here
    mine.mkdir()
    encode_corpus(write_jsonl(tmp_path / "c.jsonl", ["ab"]), tiny_tokenizer, tmp_path / "c")
    assert not stale.exists() and not other.exists()
    assert alive.exists() and mine.exists()  # a live run's staging is never touched


# A shell that runs the tests in the background (as CI may) starts them with SIGINT ignored, and a
# child inherits that; Ctrl-C at a terminal reaches Python's default handler, so the run restores it.
_INTERRUPTED_RUN = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from bytepiece import encode_corpus
encode_corpus(sys.argv[1], sys.argv[2], sys.argv[3], shard_size="64K", workers=1, overwrite=True)
"""


@pytest.mark.slow
def test_ctrl_c_in_a_real_process(tmp_path, tiny_model_file, tiny_tokenizer):
    big = tmp_path / "big.txt"
    big.write_text(("abcd 中文 ab\n" * 2000) * 300, encoding="utf-8")  # ~9 MB: seconds to encode
    out = tmp_path / "out" / "c"
    out.parent.mkdir()
    encode_corpus(write_jsonl(tmp_path / "old.jsonl", ["previous"]), tiny_tokenizer, out)
    before = corpus_files(out.parent)
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_RUN, str(big), str(tiny_model_file), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(".encoding-" in p.name for p in out.parent.iterdir()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert leftovers(out.parent) == []
    assert corpus_files(out.parent) == before


# -- the command line ---------------------------------------------------------------------------------------

def test_cli_gzip_jsonl_prints_ids_of_documents(runner, tiny_model_file, tiny_tokenizer, tmp_path):
    docs = ["multi\nline abcd", "中文"]
    path = write_inputs(tmp_path, "jsonl.gz", docs)
    result = runner.invoke(app, ["encode", str(path), "-m", str(tiny_model_file)])
    assert result.exit_code == 0, result.output
    assert [[int(x) for x in line.split()] for line in result.stdout.splitlines()] == tiny_tokenizer.encode_batch(docs)
    result = runner.invoke(app, ["encode", str(path), "-m", str(tiny_model_file), "-f", "pieces"])
    assert result.stdout.splitlines()[0].startswith("m u l t i \\n") or "\\n" in result.stdout.splitlines()[0]


def test_cli_shards_manifest_and_force(runner, tiny_model_file, tiny_tokenizer, tmp_path):
    docs = documents(150)
    path = write_jsonl(tmp_path / "c.jsonl", docs, field="body")
    out = tmp_path / "out" / "corpus"
    out.parent.mkdir()
    args = ["encode", str(path), "-m", str(tiny_model_file), "--format", "bin", "-o", str(out), "--jsonl-field",
            "body", "--shard-size", "2K", "--add-eos"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    ds = TokenDataset(out)
    assert f"wrote {ds.n_tokens:,} tokens (uint16) of 150 documents to {len(ds.shards)} shard(s)" in result.stderr
    assert [ds[i].tolist() for i in range(len(ds))] == tiny_tokenizer.encode_batch(docs, add_eos=True)
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already holds a corpus" in again.stderr and "--force" in again.stderr
    assert runner.invoke(app, args + ["--force"]).exit_code == 0


@pytest.mark.parametrize("args, message, code", [
    (["--shard-size", "1M"], "--shard-size applies to shards", 2),
    (["--cluster", "local:2"], "--cluster writes shards", 2),
    (["-f", "bin", "-o", "{tmp}/c", "--strict-utf8"], "invalid UTF-8 at line 2", 1),
    (["-f", "bin", "-o", "{tmp}/c", "--shard-size", "huge"], "--shard-size must be a size", 2),
    (["-f", "bin", "-o", "{tmp}/c", "--shard-size", "1Q"], "--shard-size must be a size", 2),
    (["-f", "bin", "-o", "{tmp}/c", "--shard-size", "-5"], "--shard-size must be a size", 2),
    (["-f", "bin", "-o", "{tmp}/c", "--shard-size", ""], "--shard-size must be a size", 2),
    (["-f", "bin", "-o", "{tmp}/c.bin", "--shard-size", "1M"], "--shard-size applies to shards", 2),
])
def test_cli_errors_are_one_line(runner, tiny_model_file, tmp_path, args, message, code):
    """Exit status 2 for a command line that cannot run as written, 1 for a failure."""
    path = tmp_path / "in.txt"
    path.write_bytes(b"ok\nbad \xff\n")
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["encode", str(path), "-m", str(tiny_model_file), *args])
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("fmt, out, cluster, message", [
    ("npy", None, None, r"format='npy' \(CLI: --format npy\) writes files: pass out=PATH"),
    ("bin", "c.bin", "local:2", r"cluster= \(CLI: --cluster\) writes shards"),
    ("ids", "ids.txt", "local:2", r"cluster= \(CLI: --cluster\) writes shards"),
])
def test_an_output_that_does_not_fit_the_format_is_refused_before_the_model_loads(tmp_path, fmt, out, cluster,
                                                                                     message):
    """The same rule as the command line's (``check_request``), before any work: the model named
    here does not exist, and the error is about the output."""
    text = tmp_path / "in.txt"
    text.write_text("abc\n")
    with pytest.raises(InputError, match=message):
        encode_corpus(text, tmp_path / "missing.model", None if out is None else tmp_path / out, format=fmt,
                      cluster=cluster)
