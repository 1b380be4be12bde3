"""The token-format registry: every format written by ``encode_corpus`` reads back through
``decode_corpus`` with its document boundaries; Megatron's layout checked against the published
layout (a reader written here from its description) and, where installed, Megatron-Core itself;
standard input is encoded as it arrives."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from bytepiece import Tokenizer, decode_corpus, encode_corpus
from bytepiece.errors import InputError, ModelFormatError
from bytepiece.tokens.formats import FORMATS, open_token_file, token_file_kind, token_format
from bytepiece_cli.app import app

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "data" / "default.model"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


LINES = [f"line {i}: cafe\u0301 中文 {'abcd ' * (i % 5)}".rstrip() for i in range(200)] + ["", "last"]
MULTILINE = [f"# doc {i}\n" + "def f():\n    return 'ok'\n\n" * (i % 3) + "tail" for i in range(60)]


def output_for(fmt: str, tmp_path: Path, sharded: bool) -> Path:
    if sharded:
        (tmp_path / "out").mkdir(exist_ok=True)
        return tmp_path / "out" / "corpus"
    return tmp_path / {"ids": "ids.txt", "pieces": "pieces.txt", "npy": "ids.npy"}.get(fmt, "corpus.bin")


CASES = [(name, False) for name in FORMATS if name != "pieces"] + [(name, True) for name in FORMATS
                                                                   if FORMATS[name].shardable]


@pytest.mark.parametrize("fmt, sharded", CASES, ids=[f"{f}{'-shards' if s else ''}" for f, s in CASES])
def test_every_format_round_trips_documents(tmp_path, fmt, sharded):
    """Lines of text in, the same lines out of decode; the ids are those of encode_batch."""
    tokenizer = Tokenizer(DEFAULT_MODEL)
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = output_for(fmt, tmp_path, sharded)
    summary = encode_corpus(text, tokenizer, out, format=fmt, add_eos=True, shard_size="2K")
    assert summary.format == fmt and summary.n_documents == len(LINES) and summary.sharded == sharded
    assert len(summary.files) > (1 if sharded else 0) and all(f.is_file() for f in summary.files)
    back = tmp_path / "back.txt"
    result = decode_corpus(out, tokenizer, back)
    assert result.format == "text" and result.n_documents == len(LINES)
    assert back.read_text(encoding="utf-8") == "".join(nfc(line) + "\n" for line in LINES)
    expected = tokenizer.encode_batch(LINES, add_eos=True)
    assert result.n_tokens == summary.n_tokens == sum(map(len, expected))
    if fmt != "ids":
        tokens, offsets = _arrays(out, sharded)
        assert [tokens[a:b].tolist() for a, b in zip(offsets, offsets[1:])] == expected


def _arrays(out: Path, sharded: bool) -> tuple[np.ndarray, list[int]]:
    if sharded:
        from bytepiece import TokenDataset

        ds = TokenDataset(out)
        docs = [ds[i] for i in range(len(ds))]
        lengths = np.cumsum([0] + [len(d) for d in docs]).tolist()
        return np.concatenate(docs), lengths
    found = open_token_file(out)
    assert found is not None
    return np.asarray(found[0]), np.asarray(found[1]).tolist()


def test_pieces_format_spells_each_id(tmp_path):
    """A line of pieces per document, each piece as ``summary.display_piece`` spells it (a
    space is '▁'), special tokens by their names."""
    from bytepiece.summary import display_piece

    tokenizer = Tokenizer(DEFAULT_MODEL)
    tokenizer.add_special_tokens(["<|sep|>"])
    text = tmp_path / "in.txt"
    text.write_text("hello world<|sep|>中文\n", encoding="utf-8")
    encode_corpus(text, tokenizer, tmp_path / "p.txt", format="pieces", allowed_special="all", add_eos=True)
    ids = tokenizer.encode("hello world<|sep|>中文", allowed_special="all", add_eos=True)
    names = [p if isinstance(p, str) else display_piece(p) for p in map(tokenizer.id_to_piece, ids)]
    assert (tmp_path / "p.txt").read_text(encoding="utf-8") == " ".join(names) + "\n"
    assert "<|sep|>" in names and "<eos>" in names[-1] and any("▁" in n for n in names)
    assert FORMATS["pieces"].binary is False and token_format("pieces") is FORMATS["pieces"]
    with pytest.raises(InputError, match="unknown token format 'txt'; choose from ids, pieces, npy, bin, megatron"):
        token_format("txt")


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("fmt", ["bin", "megatron", "bin-shards"])
def test_multiline_documents_decode_to_json_lines(tmp_path, kind, fmt):
    """Documents that hold newlines come back whole: auto picks JSON Lines from what the corpus
    recorded, and text output refuses to split a document."""
    if kind == "jsonl":
        path = tmp_path / "c.jsonl"
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in MULTILINE), encoding="utf-8")
    elif kind == "jsonl.gz":
        path = tmp_path / "c.jsonl.gz"
        path.write_bytes(gzip.compress("".join(json.dumps({"text": d}) + "\n" for d in MULTILINE).encode()))
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        path = tmp_path / "c.parquet"
        pq.write_table(pa.table({"text": MULTILINE}), path, row_group_size=7)
    name, _, shards = fmt.partition("-")
    out = output_for(name, tmp_path, bool(shards))
    encode_corpus(path, DEFAULT_MODEL, out, format=name, shard_size="1K")
    back = tmp_path / "back.jsonl"
    summary = decode_corpus(out, DEFAULT_MODEL, back)
    assert summary.format == "jsonl"
    assert [json.loads(line)["text"] for line in back.read_text(encoding="utf-8").splitlines()] == MULTILINE
    with pytest.raises(InputError, match=r"document 0 of .* holds a line break.*format='jsonl'"):
        decode_corpus(out, DEFAULT_MODEL, tmp_path / "back.txt", format="text")
    assert not (tmp_path / "back.txt").exists()


def test_decode_refuses_another_model_and_foreign_ids(tmp_path, tiny_tokenizer):
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin")
    with pytest.raises(ModelFormatError, match="encoded with another model"):
        decode_corpus(tmp_path / "c.bin", tiny_tokenizer, tmp_path / "back.txt")
    ids = tmp_path / "ids.txt"
    ids.write_text("5 6\n7 99999\n")
    with pytest.raises(InputError, match=r"line 2 of .*ids.txt: id 99999 is outside this vocabulary"):
        decode_corpus(ids, tiny_tokenizer, tmp_path / "back.txt")
    assert not (tmp_path / "back.txt").exists()


SPECIALS = ["<|im_start|>", "<|im_end|>"]
CHAT = ["<|im_start|>user hi<|im_end|>", "plain <|im_end|> text", "none here"]


@pytest.mark.parametrize("fmt, sharded", CASES, ids=[f"{f}{'-shards' if s else ''}" for f, s in CASES])
def test_special_tokens_decode_back_to_their_text(tmp_path, fmt, sharded):
    """Audit: ids of special tokens added at encoding were "outside this vocabulary" for decode.
    A .bin, a Megatron pair and a corpus record the tokens; lines of ids and .npy record nothing,
    so decode takes them again (in the same order), and says so when they are missing."""
    text = tmp_path / "chat.txt"
    text.write_text("\n".join(CHAT) + "\n", encoding="utf-8")
    out = output_for(fmt, tmp_path, sharded)
    encode_corpus(text, DEFAULT_MODEL, out, format=fmt, special_tokens=SPECIALS, allowed_special="all",
                  shard_size="2K")
    tokenizer = Tokenizer(DEFAULT_MODEL)
    first = tokenizer.vocab_size
    if fmt != "ids":
        tokens, _ = _arrays(out, sharded)
        assert {first, first + 1} <= set(tokens.tolist())
    records = fmt not in ("ids", "npy")
    back = tmp_path / "back.txt"
    if records:
        decode_corpus(out, tokenizer, back)
    else:
        with pytest.raises(InputError, match=rf"id {first}\b.*outside this vocabulary.*special_tokens"):
            decode_corpus(out, tokenizer, back)
        assert not back.exists()
        decode_corpus(out, tokenizer, back, special_tokens=SPECIALS)
    assert back.read_text(encoding="utf-8") == "".join(line + "\n" for line in CHAT)
    assert tokenizer.vocab_size == first  # the caller's tokenizer is left as it was


def test_recorded_special_tokens_that_clash_with_the_model_are_refused(tmp_path):
    text = tmp_path / "chat.txt"
    text.write_text("\n".join(CHAT) + "\n", encoding="utf-8")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin", special_tokens=SPECIALS, allowed_special="all")
    other = Tokenizer(DEFAULT_MODEL, special_tokens=["<|other|>"])
    with pytest.raises(InputError, match=r"gives id \d+ to special token '<\|im_start\|>', but this model has "
                                         r"'<\|other\|>' there"):
        decode_corpus(tmp_path / "c.bin", other, tmp_path / "back.txt")
    assert not (tmp_path / "back.txt").exists()


def test_the_callers_metadata_cannot_replace_the_record_of_special_tokens(tmp_path):
    """Reviewer: metadata={"special_tokens": ...} used to overwrite the record decoding reads."""
    text = tmp_path / "chat.txt"
    text.write_text("\n".join(CHAT) + "\n", encoding="utf-8")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin", special_tokens=SPECIALS, allowed_special="all",
                  metadata={"special_tokens": ["mine"], "project": "x"})
    decode_corpus(tmp_path / "c.bin", DEFAULT_MODEL, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text(encoding="utf-8") == "".join(line + "\n" for line in CHAT)
    plain = tmp_path / "plain.txt"
    plain.write_text("abc\n")
    encode_corpus(plain, DEFAULT_MODEL, tmp_path / "p.bin", metadata={"special_tokens": ["mine"]})
    decode_corpus(tmp_path / "p.bin", DEFAULT_MODEL, tmp_path / "p.txt")
    assert (tmp_path / "p.txt").read_text() == "abc\n"


def test_decode_corpus_refuses_no_inputs_and_a_dataset(tmp_path):
    """Audit: an empty list read standard input (and waited on a terminal); a TokenDataset was
    iterated as if it were paths (a bare TypeError)."""
    from bytepiece import TokenDataset

    with pytest.raises(InputError, match="no inputs to decode"):
        decode_corpus([], DEFAULT_MODEL, tmp_path / "back.txt")
    text = tmp_path / "in.txt"
    text.write_text("abc\n")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin")
    with TokenDataset(tmp_path / "c.bin") as ds, pytest.raises(InputError, match="not a TokenDataset"):
        decode_corpus(ds, DEFAULT_MODEL, tmp_path / "back.txt")
    assert not (tmp_path / "back.txt").exists()


def test_cli_decodes_lines_of_ids_with_special_tokens(runner, tmp_path):
    text = tmp_path / "chat.txt"
    text.write_text("\n".join(CHAT) + "\n", encoding="utf-8")
    options = [arg for token in SPECIALS for arg in ("--special-token", token)]
    ids = runner.invoke(app, ["encode", str(text), *options, "--allow-special"])
    assert ids.exit_code == 0, ids.output
    (tmp_path / "ids.txt").write_text(ids.stdout)
    missing = runner.invoke(app, ["decode", str(tmp_path / "ids.txt")])
    assert missing.exit_code == 1
    assert missing.stderr.strip().endswith("Then decode with the same --special-token options")
    done = runner.invoke(app, ["decode", str(tmp_path / "ids.txt"), *options])
    assert done.exit_code == 0 and done.stdout == "".join(line + "\n" for line in CHAT)


def test_npy_output_named_otherwise_reads_back(tmp_path):
    """Audit: ``encode -f npy -o ids.bin`` wrote ids.bin and ids.bin.offsets.npy, and decode read
    ids.bin as lines of ids ("'\\x93NUMPY...' is not a token id")."""
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "ids.bin", format="npy")
    assert (tmp_path / "ids.bin.offsets.npy").is_file()
    decode_corpus(tmp_path / "ids.bin", DEFAULT_MODEL, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text(encoding="utf-8") == "".join(nfc(line) + "\n" for line in LINES)


@pytest.mark.parametrize("fmt, companion, owner", [
    ("bin", "c.bin.idx", "c.bin"), ("bin", "c.bin.json", "c.bin"), ("megatron", "c.idx", "c.bin"),
    ("npy", "c.offsets.npy", "c.npy")])
def test_decoding_an_index_or_sidecar_names_its_token_file(tmp_path, fmt, companion, owner):
    """Audit: an index or sidecar given to decode was read as lines of ids ("... is not a token id")."""
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / owner, format=fmt)
    with pytest.raises(InputError, match=rf"is the \w+( file)? of the token file .*{owner}; decode .*{owner} instead"):
        decode_corpus(tmp_path / companion, DEFAULT_MODEL, tmp_path / "back.txt")


def test_a_truncated_bin_names_its_sidecar(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n" * 20)
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin")
    data = (tmp_path / "c.bin").read_bytes()
    (tmp_path / "c.bin").write_bytes(data[:10])
    with pytest.raises(ModelFormatError, match=rf"c.bin has 10 bytes but its sidecar c.bin.json records {len(data):,}"):
        decode_corpus(tmp_path / "c.bin", DEFAULT_MODEL, tmp_path / "back.txt")


@pytest.mark.parametrize("fmt, sharded", CASES, ids=[f"{f}{'-shards' if s else ''}" for f, s in CASES])
def test_what_encode_writes_is_found_by_what_is_on_disk(tmp_path, fmt, sharded):
    """One rule (``token_file_kind``) for decode and TokenDataset: each output, and a sharded
    corpus by its prefix, its manifest or its folder."""
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES[:50]) + "\n", encoding="utf-8")
    out = output_for(fmt, tmp_path, sharded)
    summary = encode_corpus(text, DEFAULT_MODEL, out, format=fmt, shard_size="1K")
    expected = {"ids": "lines", "npy": "npy", "bin": "bin", "megatron": "bin"}[fmt]
    if sharded:
        manifest = out.with_name(out.name + ".manifest.json")
        assert manifest.is_file() and len(summary.files) > 1
        assert {token_file_kind(p) for p in (out, manifest, out.parent)} == {"corpus"}
        decode_corpus(out.parent, DEFAULT_MODEL, tmp_path / "back.txt")  # a folder with one manifest
        assert (tmp_path / "back.txt").read_text(encoding="utf-8") == "".join(nfc(t) + "\n" for t in LINES[:50])
    else:
        assert token_file_kind(out) == expected


def test_token_dataset_says_how_to_read_an_npy(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n")
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "ids.npy", format="npy")
    from bytepiece import TokenDataset

    with pytest.raises(ModelFormatError, match=r"ids.npy is an .npy token file.*numpy.load"):
        TokenDataset(tmp_path / "ids.npy")


def test_a_bin_without_its_sidecar_is_not_read_as_ids(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n" * 20)
    encode_corpus(text, DEFAULT_MODEL, tmp_path / "c.bin")
    (tmp_path / "c.bin.json").unlink()
    with pytest.raises(ModelFormatError, match=r"c.bin.json"):
        decode_corpus(tmp_path / "c.bin", DEFAULT_MODEL, tmp_path / "back.txt")


# -- Megatron's indexed dataset ---------------------------------------------------------------------

def read_megatron(prefix: Path) -> list[list[int]]:
    """The documents of a Megatron ``.bin``/``.idx`` pair, read from the published layout alone
    (Megatron-Core's ``_IndexReader``: magic, version, dtype code, counts, then the sequence
    lengths, sequence byte pointers and document index)."""
    idx = prefix.with_suffix(".idx").read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", idx, 9)
    assert version == 1
    dtype = {4: np.int32, 8: np.uint16}[code]
    pos = 9 + struct.calcsize("<QBQQ")
    lengths = np.frombuffer(idx, np.int32, n_seq, pos)
    pointers = np.frombuffer(idx, np.int64, n_seq, pos + 4 * n_seq)
    documents = np.frombuffer(idx, np.int64, n_doc, pos + 12 * n_seq)
    assert pos + 12 * n_seq + 8 * n_doc == len(idx)
    data = prefix.with_suffix(".bin").read_bytes()
    sequences = [np.frombuffer(data, dtype, int(n), int(p)).tolist() for n, p in zip(lengths, pointers)]
    return [sum(sequences[a:b], []) for a, b in zip(documents, documents[1:])]


@pytest.mark.parametrize("vocab", ["small", "large"])
def test_megatron_files_follow_the_published_layout(tmp_path, tiny_tokenizer, vocab):
    """uint16 ids below 65,500 ids, int32 above (Megatron's own rule), one sequence per document."""
    tokenizer = tiny_tokenizer if vocab == "small" else Tokenizer(DEFAULT_MODEL)
    if vocab == "large" and tokenizer.vocab_size < 65500:
        tokenizer = Tokenizer.from_counts({bytes([b]): 1 for b in range(256)}
                                          | {f"w{i}".encode(): 2 for i in range(70000)})
    docs = ["abcd ab", "", "中文 w12 w69999", "x" * 3000]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(docs) + "\n", encoding="utf-8")
    summary = encode_corpus(text, tokenizer, tmp_path / "m.bin", format="megatron", add_eos=True)
    assert summary.dtype == ("uint16" if vocab == "small" else "int32")
    assert read_megatron(tmp_path / "m.bin") == tokenizer.encode_batch(docs, add_eos=True)
    meta = json.loads((tmp_path / "m.bin.json").read_text())
    assert meta["format"] == "bytepiece-megatron" and meta["index"]["file"] == "m.idx"


def test_megatron_shards_each_follow_the_layout(tmp_path):
    tokenizer = Tokenizer(DEFAULT_MODEL)
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    summary = encode_corpus(text, tokenizer, tmp_path / "out" / "c", format="megatron", shard_size="1K")
    assert len(summary.files) > 2
    documents = [doc for shard in summary.files for doc in read_megatron(shard)]
    assert documents == tokenizer.encode_batch(LINES)


def test_megatron_core_reads_our_files(tmp_path):
    """Megatron-Core's own reader (``IndexedDataset``) on a file we wrote, where it is installed."""
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset",
                                  reason="megatron-core (and torch) not installed")
    tokenizer = Tokenizer(DEFAULT_MODEL)
    text = tmp_path / "in.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    encode_corpus(text, tokenizer, tmp_path / "m.bin", format="megatron", add_eos=True)
    dataset = indexed.IndexedDataset(str(tmp_path / "m"), mmap=True)
    expected = tokenizer.encode_batch(LINES, add_eos=True)
    assert len(dataset) == len(expected)
    assert [dataset[i].tolist() for i in range(len(dataset))] == expected
    assert dataset.document_indices.tolist() == list(range(len(expected) + 1))


def test_megatron_index_damage_is_refused(tmp_path, tiny_tokenizer):
    text = tmp_path / "in.txt"
    text.write_text("abc\nde\n")
    encode_corpus(text, tiny_tokenizer, tmp_path / "m.bin", format="megatron")
    idx = tmp_path / "m.idx"
    data = bytearray(idx.read_bytes())
    data[9] = 2  # version
    idx.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="m.idx"):
        open_token_file(tmp_path / "m.bin")


# -- the command line ---------------------------------------------------------------------------------

def test_cli_encode_megatron_shards_and_decode_jsonl(runner, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in MULTILINE), encoding="utf-8")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "corpus"
    result = runner.invoke(app, ["encode", str(path), "-f", "megatron", "-o", str(out), "--shard-size", "1K",
                                 "--add-eos"])
    assert result.exit_code == 0, result.output
    assert "shard(s) listed in" in result.stderr and f"Megatron --data-path: {out}-00000 {out}-00001" in result.stderr
    result = runner.invoke(app, ["decode", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == MULTILINE
    result = runner.invoke(app, ["decode", str(out), "-f", "text"])
    assert result.exit_code == 1 and "--format jsonl" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["decode", str(out), "-o", str(tmp_path / "back.jsonl")])
    assert result.exit_code == 0 and f"wrote {len(MULTILINE)} documents (jsonl" in result.stderr


def test_stdin_is_encoded_as_it_arrives(tmp_path):
    """``yes hello | bytepiece encode | head -1``: the first line comes out while the input is
    still endless, nothing is spooled to disk, and the pipeline ends when ``head`` does."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    start = time.monotonic()
    done = subprocess.run(f"yes hello | {sys.executable} -m bytepiece_cli.app encode | head -1", shell=True,
                          capture_output=True, timeout=90, env=env, executable="/bin/bash")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.decode().split() == [str(i) for i in Tokenizer(DEFAULT_MODEL).encode("hello")]
    assert b"Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no spool file
    assert time.monotonic() - start < 90
