"""Input that is not text or not line-shaped (issue 18): binary data anywhere in a file (not
only in its first block), random bytes (compressed or not), lines past the longest line read,
and lone surrogate escapes in JSON Lines; text in any script and encoding still passes."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import pytest

from bytepiece.corpus import describe_sources, plan_shards, read_shard
from bytepiece.corpus import read as corpus_read
from bytepiece.corpus.binary import check_block, check_head
from bytepiece.corpus.read import MAX_LINE_BYTES
from bytepiece.corpus.shards import MIN_SHARD_BYTES
from bytepiece.errors import InputError


def _docs(path, *, batch_bytes=1 << 16, shard_bytes=1 << 30, purpose="encode", **kwargs) -> list[bytes]:
    sources = describe_sources([path], jsonl_field=kwargs.pop("jsonl_field", None))
    out = []
    for shard in plan_shards(sources, shard_bytes):
        for batch in read_shard(shard, purpose=purpose, batch_bytes=batch_bytes, **kwargs):
            out += [batch.data[batch.offsets[i]:batch.offsets[i + 1]] for i in range(batch.n_documents)]
    return out


# -- binary data anywhere, random bytes ----------------------------------------------------------

def test_nul_bytes_after_the_first_block_are_refused_with_their_offset(tmp_path):
    text = b"a line of text\n" * 5000  # 75,000 bytes: more than the first look and the first block
    plain = tmp_path / "tail.txt"
    plain.write_bytes(text + b"\x00" * (8 << 20))
    compressed = tmp_path / "tail.txt.gz"
    compressed.write_bytes(gzip.compress(text + b"\x00" * (8 << 20), compresslevel=1))
    for path in (plain, compressed):
        describe_sources([path])  # the start of the file is text
        for purpose in ("encode", "train"):
            with pytest.raises(InputError, match=rf"{path.name} holds binary data at byte 75,000 "):
                _docs(path, purpose=purpose)


def test_binary_data_is_found_in_a_later_shard(tmp_path):
    path = tmp_path / "shards.txt"
    path.write_bytes(b"text\n" * 20000 + b"\x00" * 20000 + b"more text\n")
    with pytest.raises(InputError, match="holds binary data at byte ") as error:
        _docs(path, shard_bytes=MIN_SHARD_BYTES, batch_bytes=1 << 12)
    offset = int(str(error.value).split("at byte ")[1].split()[0].replace(",", ""))
    assert 100_000 <= offset < 100_000 + (1 << 12)  # in the first block that is mostly NUL bytes


@pytest.mark.parametrize("pack", [lambda b: b, gzip.compress])
def test_random_bytes_are_refused(tmp_path, pack):
    path = tmp_path / "rnd.dat"
    path.write_bytes(pack(os.urandom(100_000)))
    with pytest.raises(InputError, match=r"rnd\.dat looks binary \([\d,]+ control characters and [\d,]+ invalid UTF-8"):
        describe_sources([path])


def test_random_bytes_after_text_are_refused(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"text line\n" * 10000 + os.urandom(1 << 20))
    with pytest.raises(InputError, match="late.txt holds binary data at byte 1[\\d,]+ "):
        _docs(path, batch_bytes=1 << 16)


def _legacy_and_odd_texts() -> dict[str, bytes]:
    chinese = "中文的文本，一行又一行。日本語の文章もある。\n" * 3000
    french = "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter.\n" * 2000
    return {
        "windows-1252": french.encode("cp1252"),
        "gbk": chinese.replace("日本語の文章もある。", "").encode("gbk"),
        "unit separators": "\x1f".join(["field", "données", "中文"] * 20000).encode(),
        "json text sequences": ("\x1e" + json.dumps({"text": "a record"}) + "\n").encode() * 3000,
        "man page overstrike": b"N\bNA\bAM\bME\bE\n     ls - list directory contents\n" * 3000,
        "terminal colours": b"\x1b[1;31merror\x1b[0m: something failed\n" * 3000,
    }


@pytest.mark.parametrize("name", list(_legacy_and_odd_texts()))
def test_text_in_legacy_encodings_and_with_separators_is_not_binary(tmp_path, name):
    data = _legacy_and_odd_texts()[name]
    path = tmp_path / f"{name.replace(' ', '_')}.txt"
    path.write_bytes(data)
    describe_sources([path])
    assert len(_docs(path, batch_bytes=1 << 14)) == data.count(b"\n") + (not data.endswith(b"\n"))


def test_real_text_in_every_script_is_not_binary(shared):
    """Every block of the development corpora (Chinese, English, code, mixed) passes the checks."""
    for name in ("zh", "en", "code", "mixed"):
        data = (shared / "corpora" / f"{name}.txt").read_bytes()
        check_head(data[: 1 << 16], name)
        for offset in range(0, len(data), 1 << 16):
            check_block(data[offset:offset + (1 << 16)], name, offset)


# -- the longest line -----------------------------------------------------------------------------

def test_longest_line_is_a_named_limit_of_one_gib():
    assert MAX_LINE_BYTES == 1 << 30


@pytest.mark.parametrize("suffix, line", [(".txt", b"x" * 50_000), (".jsonl", b'{"text": "' + b"y" * 50_000 + b'"}')])
def test_line_longer_than_the_limit_names_file_and_line(tmp_path, suffix, line):
    short = b'{"text": "ok"}' if suffix == ".jsonl" else b"ok"
    path = tmp_path / f"long{suffix}"
    path.write_bytes(short + b"\n" + short + b"\n" + line + b"\n" + short + b"\n")
    assert len(_docs(path, max_line=60_000, batch_bytes=1 << 12)) == 4
    for batch_bytes in (1 << 12, 1 << 20):  # the line spans blocks; the line lies inside one block
        with pytest.raises(InputError, match=rf"long{suffix}: line 3 is longer than 40\.0 KiB, the longest line"):
            _docs(path, max_line=40 << 10, batch_bytes=batch_bytes)


def test_line_limit_counts_lines_of_the_whole_file_in_a_later_shard(tmp_path):
    path = tmp_path / "late_long.txt"
    path.write_bytes(b"short line\n" * 2000 + b"z" * 30_000 + b"\n")
    with pytest.raises(InputError, match=r"late_long\.txt: line 2001 is longer than 16\.0 KiB"):
        _docs(path, shard_bytes=MIN_SHARD_BYTES, batch_bytes=1 << 12, max_line=16 << 10)


def test_line_limit_stops_reading_as_soon_as_it_is_passed(tmp_path, monkeypatch):
    path = tmp_path / "endless.txt.gz"
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    path.write_bytes(compressor.compress(b"a\n" + b"w" * (64 << 20)) + compressor.flush())
    read = []
    real_open_stream = corpus_read.open_stream

    def counting_open_stream(source):
        reader, raw = real_open_stream(source)

        class Counting:
            def read(self, size=-1):
                data = reader.read(size)
                read.append(len(data))
                return data

            def close(self):
                reader.close()

        return Counting(), raw

    monkeypatch.setattr(corpus_read, "open_stream", counting_open_stream)
    with pytest.raises(InputError, match=r"line 2 is longer than 64\.0 KiB"):
        _docs(path, max_line=64 << 10, batch_bytes=1 << 14)
    assert sum(read) <= (64 << 10) + 2 * (1 << 14)


def test_training_reads_a_long_text_line_in_pieces_without_the_limit(tmp_path):
    path = tmp_path / "long_train.txt"
    path.write_bytes(b"ab " * 30_000 + b"\n")
    assert b"".join(_docs(path, purpose="train", max_line=10_000, batch_bytes=1 << 12)) == b"ab " * 30_000


# -- lone surrogate escapes in JSON Lines ---------------------------------------------------------

@pytest.mark.parametrize("normalize", [True, False])
def test_lone_surrogate_escape_is_replaced_and_counted_or_names_file_and_line(tmp_path, normalize):
    path = tmp_path / "sur.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "bad \\ud800 x \\ud83d\\ude00"}\n', encoding="ascii")
    (source,) = describe_sources([path])
    batches = list(read_shard(plan_shards([source])[0], purpose="encode", normalize=normalize))
    assert b"".join(b.data for b in batches) == "okbad \ufffd x \U0001F600".encode()
    assert sum(b.invalid_utf8 for b in batches) == 1
    with pytest.raises(InputError, match=r"sur\.jsonl: line 2: field 'text' holds the lone surrogate escape \\ud800.*"
                                         r"errors='replace' \(CLI: leave out --strict-utf8\)"):
        list(read_shard(plan_shards([source])[0], purpose="encode", errors="strict", normalize=normalize))
