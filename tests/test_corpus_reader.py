"""The corpus reader (``bytepiece.corpus``): the same documents for any shard size and batch
size, and for training and encoding alike (one document model); gzip, zstd and Parquet inputs;
refused inputs."""

from __future__ import annotations

import gzip
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece.corpus import describe_sources, plan_shards, read_shard
from bytepiece.corpus.shards import MIN_SHARD_BYTES
from bytepiece.errors import InputError

LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n\x00"), max_size=40) | st.sampled_from(
    ["", "\r", "e\u0301 not NFC", "中文 line", "x" * 3000, "  indented\t"])


def _read(path, shard_bytes, batch_bytes, purpose="encode", **kwargs):
    sources = describe_sources([path], jsonl_field=kwargs.pop("jsonl_field", None),
                               parquet_column=kwargs.pop("parquet_column", None),
                               text_document=kwargs.pop("text_document", "line"))
    docs = []
    for shard in plan_shards(sources, shard_bytes):
        for batch in read_shard(shard, purpose=purpose, batch_bytes=batch_bytes, **kwargs):
            docs += [batch.data[batch.offsets[i]:batch.offsets[i + 1]] for i in range(batch.n_documents)]
    if purpose == "encode":
        return docs
    return _whole_lines(docs, _read(path, shard_bytes, batch_bytes, "encode", **kwargs))


def _whole_lines(train_docs: list[bytes], encode_docs: list[bytes]) -> list[bytes]:
    """Training reads a line longer than a batch in pieces cut at chunk boundaries: join the
    pieces back, checking that no piece crosses a document boundary of encoding."""
    joined, k = [], 0
    for doc in encode_docs:
        parts = train_docs[k]
        k += 1
        while len(parts) < len(doc):
            parts += train_docs[k]
            k += 1
        assert parts == doc
        joined.append(parts)
    assert k == len(train_docs)
    return joined


def _nfc(text: str) -> bytes:
    return unicodedata.normalize("NFC", text).encode("utf-8")


def _text_reference(lines: list[str]) -> list[bytes]:
    """One document per line, without its newline."""
    return [_nfc(line) for line in lines]


@settings(max_examples=30)
@given(st.lists(LINE_TEXT, min_size=1, max_size=60), st.integers(1, 8), st.integers(0, 10_000),
       st.sampled_from([64, 1000, 1 << 16]), st.booleans())
def test_text_documents_do_not_depend_on_shard_or_batch_size(tmp_path_factory, lines, repeat, shard_extra, batch_bytes,
                                                             final_newline):
    content = "\n".join(lines * repeat) + ("\n" if final_newline else "")
    path = tmp_path_factory.mktemp("text") / "c.txt"
    path.write_bytes(content.encode("utf-8"))
    lines = content.split("\n")
    if content.endswith("\n") or not content:
        lines.pop()  # a final newline ends the last line; it does not start another
    expected = _text_reference(lines)
    assert _read(path, MIN_SHARD_BYTES + shard_extra, batch_bytes) == expected
    assert _read(path, 1 << 30, 1 << 20) == expected
    # training reads the same documents (a long line possibly in pieces of whole chunks)
    assert _read(path, MIN_SHARD_BYTES + shard_extra, batch_bytes, purpose="train") == expected
    # the whole file as one document, newlines kept
    assert _read(path, MIN_SHARD_BYTES + shard_extra, batch_bytes, text_document="file") == [_nfc(content)]


@settings(max_examples=30)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=60), min_size=1, max_size=40), st.integers(1, 8),
       st.integers(0, 10_000), st.sampled_from([64, 1000, 1 << 16]), st.booleans())
def test_jsonl_documents_do_not_depend_on_shard_or_batch_size(tmp_path_factory, texts, repeat, shard_extra, batch_bytes,
                                                              ensure_ascii):
    texts = texts * repeat
    path = tmp_path_factory.mktemp("jsonl") / "c.jsonl"
    lines = [json.dumps({"id": i, "text": t}, ensure_ascii=ensure_ascii).encode("utf-8") for i, t in enumerate(texts)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    expected = [_nfc(t) for t in texts]
    assert _read(path, MIN_SHARD_BYTES + shard_extra, batch_bytes) == expected
    assert _read(path, 1 << 30, 1 << 20) == expected
    assert _read(path, MIN_SHARD_BYTES + shard_extra, batch_bytes, purpose="train") == expected


def _multiline_docs() -> list[str]:
    return [f"def f{i}():\n    return '中文 {i}'\n\n" * (i % 5 + 1) + "e\u0301" for i in range(300)]


def test_gzip_and_zstd_read_like_the_plain_file(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    docs = _multiline_docs()
    raw = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    plain = tmp_path / "c.jsonl"
    plain.write_bytes(raw)
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(raw))
    zst = tmp_path / "c.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw))
    expected = _read(plain, MIN_SHARD_BYTES, 1000)
    assert expected == [_nfc(d) for d in docs]
    for path in (gz, zst):
        (source,) = describe_sources([path])
        assert source.compression == path.suffix.lstrip(".").replace("gz", "gzip").replace("zst", "zstd")
        assert len(plan_shards([source], MIN_SHARD_BYTES)) == 1  # a compressed stream is one shard
        assert _read(path, MIN_SHARD_BYTES, 1000) == expected


def test_compression_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "looks_plain.txt"
    path.write_bytes(gzip.compress("first line\nsecond line\n".encode()))
    assert _read(path, 1 << 20, 1 << 20) == [b"first line", b"second line"]


def _parquet(tmp_path, values, row_group_size, name="c.parquet", column="text"):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / name
    table = pa.table({"id": list(range(len(values))), column: values})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("shard_bytes", [MIN_SHARD_BYTES, 1 << 30])
def test_parquet_rows_are_documents_for_any_shard_size(tmp_path, shard_bytes):
    docs = _multiline_docs()
    path = _parquet(tmp_path, docs, row_group_size=17)
    sources = describe_sources([path])
    if shard_bytes == MIN_SHARD_BYTES:
        assert len(plan_shards(sources, shard_bytes)) > 1
    assert _read(path, shard_bytes, 1 << 20) == [_nfc(d) for d in docs]


def test_parquet_column_option_and_errors(tmp_path):
    path = _parquet(tmp_path, ["a", "b"], row_group_size=1, column="content")
    assert _read(path, 1 << 20, 1 << 20, parquet_column="content") == [b"a", b"b"]
    with pytest.raises(InputError, match="no column 'text'.*--parquet-column"):
        _read(path, 1 << 20, 1 << 20)
    nulls = _parquet(tmp_path, ["a", "b", None], row_group_size=2, name="nulls.parquet")
    with pytest.raises(InputError, match=r"row 2 \(row group 1\).*holds null, expected a string"):
        _read(nulls, 1 << 20, 1 << 20)


def test_parquet_binary_column_is_decoded_with_replacement(tmp_path):
    path = _parquet(tmp_path, [b"ok", b"bad \xff byte"], row_group_size=8)
    sources = describe_sources([path])
    batches = [b for s in plan_shards(sources) for b in read_shard(s, purpose="encode")]
    assert batches[0].data == b"okbad \xef\xbf\xbd byte" and sum(b.invalid_utf8 for b in batches) == 1
    with pytest.raises(InputError, match="row 1"):
        [b for s in plan_shards(sources) for b in read_shard(s, purpose="encode", errors="strict")]


# Named ids, and a gzip header without a time stamp: pytest-xdist requires every worker to
# collect the same test ids, and gzip.compress writes the current second into its bytes.
@pytest.mark.parametrize("content, message", [
    (gzip.compress(b"\x00\x01\x02\x03" * 1000, mtime=0), "looks binary"),
    (b"\x00" * 500 + b"text", "looks binary"),
    (b"\x89PNG\r\n\x1a\n" + b"x" * 100, "PNG"),
    (b"BZh91AY&SY" + b"x" * 100, "bzip2"),
], ids=["gzip-of-binary", "nul-bytes", "png", "bzip2"])
def test_binary_input_is_refused(tmp_path, content, message):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        describe_sources([path])


def test_strict_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"good\nalso good\nbad \xff here\n")
    assert _read(path, 1 << 20, 1 << 20)[2] == "bad \ufffd here".encode()
    with pytest.raises(InputError, match=r"c.txt: invalid UTF-8 at line 3"):
        _read(path, 1 << 20, 1 << 20, errors="strict")
