"""Reading inputs outside the passes over a corpus: one plain-text input whole, for readers of
running text (the evaluation harness), and the documents of a small input in one go (held-out
text, texts to check an export on), with the same checks and messages as the corpus reader's."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from ..errors import InputError
from .binary import check_block
from .inputs import open_corpus
from .read import read_shard, reading_errors_reported
from .shards import plan_shards
from .sources import Source, describe_source, open_stream


def holds_text(text: str) -> bool:
    """Whether ``text`` holds anything but line breaks: without, no measurement on it means
    anything (its tokens are a newline's, or there are none)."""
    return bool(text.strip("\r\n"))


def no_text_error(label: str) -> InputError:
    """The one refusal of an input that holds no text (``label`` names it)."""
    return InputError(f"{label} holds no text; give a file with at least one line of text")


def read_plain_text(path: str | os.PathLike, *, what: str = "text file", block_bytes: int = 1 << 22) -> bytes:
    """The whole content of one plain-text input (gzip or zstd decompressed), for readers that
    take running text rather than documents (the evaluation harness). The file is refused as the
    corpus reader refuses it (missing, not a regular file, binary, corrupt or truncated), with the
    same messages; a JSON Lines or Parquet file is refused, since its records are not one text."""
    name = os.fspath(path)
    with contextlib.suppress(OSError):
        if stat.S_ISFIFO(os.stat(name).st_mode):
            raise InputError(f"{name} is a pipe; save it to a file first (a gzip or zstd file is read as it is, "
                             "no need to decompress it)")
    source = describe_source(name, label=name)
    if source.format != "text":
        raise InputError(f"{source.label} is {source.format.replace('jsonl', 'JSON Lines').replace('parquet', 'Parquet')}"
                         f"; a {what} must be plain text (gzip or zstd allowed)")
    reader, raw = open_stream(source)
    parts: list[bytes] = []
    offset = 0
    try:
        with reading_errors_reported(source):
            while block := reader.read(block_bytes):
                check_block(block, source.label, offset)
                parts.append(block)
                offset += len(block)
    finally:
        reader.close()
        if raw is not reader:
            raw.close()
    return b"".join(parts)


def file_documents(path: str | os.PathLike, *, jsonl_field: str | None = None,
                   parquet_column: str | None = None) -> Iterator[tuple[bytes, Source]]:
    """Each document of ``path`` (UTF-8, not normalized) with the source it came from, read as
    ``encode`` reads the file: a text file's lines without their newlines, JSON Lines fields,
    Parquet values, compressed input decompressed, binary or truncated input refused."""
    with open_corpus(path, jsonl_field=jsonl_field, parquet_column=parquet_column, once=True) as corpus:
        for shard in plan_shards(corpus.sources):
            for batch in read_shard(shard, purpose="encode", normalize=False):
                data, offsets = batch.data, batch.offsets.tolist()
                for a, b in zip(offsets, offsets[1:]):
                    yield data[a:b], shard.source
