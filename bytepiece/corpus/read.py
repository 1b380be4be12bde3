"""Reading a shard: its documents as batches of UTF-8 bytes with document offsets.

This is the one definition of what a document is, for training, encoding, decoding and the
evaluation harness alike (docs/formats.md states it for users):

- plain text: one document per line, *without* its ``\\n`` (what sentencepiece and most data
  pipelines read from a text file), or with ``text_document="file"`` the whole file, newlines
  kept;
- JSON Lines: the field's string of each record, newlines kept (blank lines are skipped);
- Parquet: the column's string of each row, newlines kept.

The same bytes are therefore trained on and encoded. One difference between the purposes is
only in how a line longer than a batch is read: training takes it in pieces cut at
10000-character chunk boundaries where NFC cannot join the two sides (the chunks are exactly
those of the whole line, and no line has to be held whole); encoding reads it to its end, up to
``max_line`` bytes.
"""

from __future__ import annotations

import contextlib
import re
import threading
import unicodedata
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..units import format_size
from .binary import check_block
from .jsonl import field_key, json_field, kernel_documents, replace_surrogates
from .shards import Shard, open_parquet
from .sources import Source, open_raw, open_stream
from .utf8 import check_errors, decode, nfc_utf8, plain_utf8, safe_cut, utf8_document

DEFAULT_BATCH_BYTES = 4 << 20
#: Longest line (a text document, a JSON Lines record) read into memory: ``/dev/zero`` or a
#: binary file given by mistake must stop with a message, not exhaust memory.
MAX_LINE_BYTES = 1 << 30
MAX_CHUNK_CHARS = 10000
MAX_NEWLINES = 100
Purpose = Literal["train", "encode"]


@dataclass
class DocBatch:
    """Documents ``data[offsets[i]:offsets[i + 1]]`` (UTF-8, NFC unless reading raw)."""

    data: bytes
    offsets: np.ndarray  # int64, n + 1
    source_index: int
    consumed: int  # input bytes consumed since the previous batch (progress)
    texts: int  # input texts (lines, records) completed in this batch
    invalid_utf8: int = 0
    max_newlines: int = MAX_NEWLINES  # newline runs per chunk (training's chunking cap)

    @property
    def n_documents(self) -> int:
        return len(self.offsets) - 1


_read_reports = threading.local()


@contextlib.contextmanager
def reporting_reads(sink: Callable[[int], None]) -> Iterator[None]:
    """While active, :func:`read_shard` in this thread calls ``sink(n)`` with the input bytes
    each batch consumed. A local caller's bar then moves within a shard; without it, one
    compressed file (one shard) would show no progress until its whole pass was done."""
    previous = getattr(_read_reports, "sink", None)
    _read_reports.sink = sink
    try:
        yield
    finally:
        _read_reports.sink = previous


def read_shard(shard: Shard, *, purpose: Purpose = "train", errors: str = "replace", normalize: bool = True,
               batch_bytes: int = DEFAULT_BATCH_BYTES, max_line: int = MAX_LINE_BYTES
               ) -> Generator[DocBatch, None, None]:
    """The documents of ``shard`` in input order, in batches of about ``batch_bytes``. A line
    longer than ``max_line`` bytes is an error as soon as that many bytes of it are read
    (except a plain-text line read for training, which is read in pieces)."""
    check_errors(errors)
    if max_line < 1:
        raise InputError(f"max_line must be a positive number of bytes, got {max_line}")
    source = shard.source
    sink = getattr(_read_reports, "sink", None)
    with reading_errors_reported(source):
        if source.format == "parquet":
            batches = _parquet_batches(shard, errors, normalize, batch_bytes)
        else:
            batches = _LineReader(shard, purpose, errors, normalize, batch_bytes, max_line).batches()
        for batch in batches:
            if sink is not None and batch.consumed:
                sink(batch.consumed)
            yield batch


@contextlib.contextmanager
def reading_errors_reported(source: Source) -> Iterator[None]:
    """A block that reads ``source``: damaged compressed data, or a read the system refused,
    comes out as one ``InputError`` naming it; anything else (a bug) is raised as it is."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        if source.compression != "none" and _is_decompression_error(e):
            raise InputError(f"{source.label}: corrupt or truncated {source.compression} data ({e})") from None
        if isinstance(e, OSError):
            raise InputError(f"cannot read {source.label}: {e.strerror or e}") from None
        raise


def _is_decompression_error(e: Exception) -> bool:
    import zlib

    return isinstance(e, (EOFError, OSError, ValueError, zlib.error)) or type(e).__name__ == "ZstdError"


class _LineReader:
    """Text and JSON Lines: whole lines of the shard's byte range, block by block."""

    def __init__(self, shard: Shard, purpose: Purpose, errors: str, normalize: bool, batch_bytes: int,
                 max_line: int = MAX_LINE_BYTES) -> None:
        self.shard, self.source = shard, shard.source
        self.purpose, self.errors, self.normalize = purpose, errors, normalize
        self.batch_bytes, self.max_line = batch_bytes, max_line
        self.lines_before = 0  # lines of the shard already read (for error messages within the shard)

    def _where(self) -> str:
        """How messages name the input; line numbers count from the shard's first line."""
        if self.shard.start == 0 or not self.source.splittable:
            return self.source.label
        return f"{self.source.label} (part from byte {self.shard.start})"

    def _to_utf8(self, text: str, raw: bytes | None) -> bytes:
        return nfc_utf8(text, raw) if self.normalize else plain_utf8(text)

    def batches(self) -> Iterator[DocBatch]:
        try:
            if self.source.format == "jsonl":
                yield from self._jsonl()
            elif self.source.text_document == "file":
                yield from self._text_file()
            else:
                yield from self._text_lines()
        except InputError as e:
            if self.shard.start == 0 or not self.source.splittable:
                raise
            raise self._with_file_line(e) from None

    def _with_file_line(self, error: InputError) -> InputError:
        """The error of a line counted from the shard's start, restated with its line number in
        the file (counting the lines before the shard costs a read of the file up to it, which
        only a failing run pays)."""
        where = self._where()
        match = re.match(re.escape(where) + r": (invalid UTF-8 at )?line (\d+)", str(error))
        if match is None:
            return error
        first = self.shard.start
        lines = 0
        with open_raw(self.source.path) as raw:
            raw.seek(first - 1)
            if raw.read(1) != b"\n":
                raw.readline()
            first = raw.tell()  # where the shard's first line starts
            raw.seek(0)
            done = 0
            while done < first and (block := raw.read(min(1 << 22, first - done))):
                lines += block.count(b"\n")
                done += len(block)
        line = int(match.group(2)) + lines
        return InputError(f"{self.source.label}: {match.group(1) or ''}line {line}{str(error)[match.end():]}")

    # -- whole lines of the byte range ------------------------------------------------------
    def _blocks(self) -> Iterator[tuple[bytes, int, int, bool]]:
        """(lines, their start offset, input bytes consumed, complete) for the lines the shard
        owns. ``complete`` is False for a piece of a line longer than a block (only when reading
        plain text for training; otherwise such a line is read until its end, or until it is
        longer than ``max_line``). Every block read is checked for binary content."""
        shard, source = self.shard, self.source
        reader, raw = open_stream(source)
        split_long = self.purpose == "train" and source.format == "text"
        try:
            pos = 0
            end = shard.end if source.splittable else -1
            if source.splittable and shard.start > 0:
                first = self._skip_cut_line(raw)
                if first is None:  # a line from before the shard runs past its end: it owns no line
                    return
                pos = first
            read_at = pos  # where the next block starts in the (decompressed) input
            last_tell = shard.start if source.splittable else 0
            budget = shard.size  # progress never counts past the shard's own bytes
            pending = _Pending()  # the start of an unfinished line (never holds a newline)
            mid_line = False  # pos is inside a long line whose start we own (we read it to its end)
            # an input read once gives what has arrived: a line is encoded as soon as it is whole
            read = getattr(reader, "read1", reader.read) if source.once else reader.read
            while True:
                if end >= 0 and pos >= end and not mid_line:
                    break
                block = read(self.batch_bytes)
                check_block(block, source.label, read_at)
                read_at += len(block)
                tell = raw.tell()
                consumed = min(max(tell - last_tell, 0), budget)
                last_tell, budget = tell, budget - consumed
                if not block:
                    if pending.size:
                        yield pending.take(), pos, consumed, True
                    break
                if end >= 0:
                    k = block.find(b"\n", max(0, end - pos - 1 - pending.size))
                    if k >= 0:  # the last line we own ends here
                        self._check_lines(pending.size, block[: k + 1])
                        yield pending.take(block[: k + 1]), pos, consumed, True
                        break
                k = block.rfind(b"\n")
                if k >= 0:
                    self._check_lines(pending.size, block[: k + 1])
                    data = pending.take(block[: k + 1])
                    yield data, pos, consumed, True
                    pos += len(data)
                    pending.add(block[k + 1:])
                    mid_line = False
                elif split_long and pending.size + len(block) >= self.batch_bytes:
                    data = pending.take(block)
                    q = safe_cut(data, 0)
                    if q > 0:
                        yield data[:q], pos, consumed, False
                        pos += q
                        mid_line = True
                    pending.add(data[q:] if q > 0 else data)
                else:
                    pending.add(block)
                    if consumed:
                        yield b"", pos, consumed, False
                if pending.size > self.max_line:
                    raise self._line_too_long()
        finally:
            reader.close()
            if raw is not reader:
                raw.close()

    def _skip_cut_line(self, raw: Any) -> int | None:
        """Past the line cut at the shard's start (it belongs to the previous shard): the offset
        of the shard's first line, or None when that line starts at or after the shard's end.
        Read a block at a time and checked for binary content, so a long line or a run of NULs
        costs one block of memory and is not read past the shard."""
        shard = self.shard
        raw.seek(shard.start - 1)
        pos = shard.start - 1
        while pos < shard.end:
            block = raw.read(min(self.batch_bytes, shard.end - pos))
            if not block:
                return None
            check_block(block, self.source.label, pos)
            k = block.find(b"\n")
            if k >= 0:
                first = pos + k + 1
                raw.seek(first)
                return first if first < shard.end else None
            pos += len(block)
        return None

    def _check_lines(self, carried: int, lines: bytes) -> None:
        """A line of ``lines`` (the first continuing ``carried`` bytes before it) longer than
        ``max_line``; whole lines inside a block can only be that long when a block is longer."""
        first = lines.find(b"\n")
        if carried + first > self.max_line:
            raise self._line_too_long()
        if len(lines) > self.max_line:
            ends = np.flatnonzero(np.frombuffer(lines, np.uint8) == 10)
            long = np.flatnonzero(np.diff(ends) - 1 > self.max_line)
            if len(long):
                raise self._line_too_long(int(long[0]) + 1)

    def _line_too_long(self, later: int = 0) -> InputError:
        line = self.lines_before + 1 + later
        return InputError(f"{self._where()}: line {line} is longer than {format_size(self.max_line)}, the longest line "
                          "read; is it a text file with one document per line?")

    # -- plain text ---------------------------------------------------------------------------
    def _text_lines(self) -> Iterator[DocBatch]:
        """One document per line, without its newline."""
        carry = ""  # NFC text of an unfinished long line after its last complete chunk (training)
        for data, _pos, consumed, complete in self._blocks():
            if not data:
                yield _one(b"", self.source.index, consumed, 0, 0, empty=True)
                continue
            if complete and not carry:
                out, invalid = utf8_document(data, self.errors, self._where(), self.lines_before,
                                             normalize=self.normalize)
                batch = _lines(out, self.source.index, consumed, invalid)
                self.lines_before += batch.texts
                yield batch
                continue
            text, invalid = decode(data, self.errors, self._where(), self.lines_before)
            if not complete:
                # A piece of a line longer than a block: its whole 10000-character chunks, as a
                # document of their own (they are chunked exactly as within the whole line).
                text = carry + text
                if not text.isascii() and self.normalize:
                    text = unicodedata.normalize("NFC", text)
                cut = (len(text) // MAX_CHUNK_CHARS) * MAX_CHUNK_CHARS
                carry = text[cut:]
                out = self._to_utf8(text[:cut], None) if cut else b""
                yield _one(out, self.source.index, consumed, 0, invalid)
                continue
            out = self._to_utf8(carry + text, None)
            carry = ""
            batch = _lines(out, self.source.index, consumed, invalid)
            self.lines_before += batch.texts
            yield batch

    def _text_file(self) -> Iterator[DocBatch]:
        """The whole file as one document (newlines kept), at most ``max_line`` bytes."""
        parts = _Pending()
        reader, raw = open_stream(self.source)
        try:
            while block := reader.read(self.batch_bytes):
                check_block(block, self.source.label, parts.size)
                parts.add(block)
                if parts.size > self.max_line:
                    raise InputError(f"{self._where()} is longer than {format_size(self.max_line)}, the largest "
                                     "document read; a file read as one document must fit (or read it a line per "
                                     "document)")
            consumed = raw.tell() if raw is not reader else parts.size
        finally:
            reader.close()
            if raw is not reader:
                raw.close()
        data = parts.take()
        out, invalid = utf8_document(data, self.errors, self._where(), 0, normalize=self.normalize)
        del data
        yield DocBatch(out, np.array([0, len(out)], np.int64), self.source.index, consumed, 1, invalid, MAX_NEWLINES)

    # -- JSON Lines ----------------------------------------------------------------------------
    def _jsonl(self) -> Iterator[DocBatch]:
        field = self.source.field
        key = field_key(field)
        for data, pos, consumed, _ in self._blocks():
            if not data:
                yield _one(b"", self.source.index, consumed, 0, 0, empty=True)
                continue
            if key is not None:
                yield self._jsonl_kernel(data, pos, consumed, key)
                continue
            docs: list[bytes] = []
            invalid = 0
            for raw_line in data.split(b"\n"):
                self.lines_before += 1
                if not raw_line.strip():
                    continue
                doc, bad = self._jsonl_line(raw_line, self.lines_before)
                invalid += bad
                docs.append(doc)
            if data.endswith(b"\n"):
                self.lines_before -= 1  # split() produced an empty last item for the final newline
            yield _batch(docs, self.source.index, consumed, len(docs), invalid)

    def _jsonl_line(self, raw_line: bytes, lineno: int) -> tuple[bytes, int]:
        """One record the Python way: (the field's UTF-8, invalid sequences replaced). A lone
        surrogate escape (``"\\ud800"``) has no UTF-8 encoding either: it is invalid text,
        replaced and counted like invalid UTF-8, or with ``errors="strict"`` an error."""
        line_text, bad = decode(raw_line, self.errors, self._where(), lineno - 1)
        where = f"{self._where()}: line {lineno}"
        value = json_field(line_text, self.source.field, where)
        value, replaced = replace_surrogates(value, self.errors, f"{where}: field {self.source.field!r}")
        return self._to_utf8(value, None), bad + replaced

    def _jsonl_kernel(self, data: bytes, pos: int, consumed: int, key: np.ndarray) -> DocBatch:
        doc_data, offsets, _, invalid, n_lines = kernel_documents(
            data, key, normalize=self.normalize, python_line=self._jsonl_line, lines_before=self.lines_before)
        self.lines_before += n_lines
        n = len(offsets) - 1
        return DocBatch(doc_data, offsets, self.source.index, consumed, n, invalid, MAX_NEWLINES)


class _Pending:
    """The bytes of an unfinished line, kept as the blocks they came in (joined once, when the
    line ends: a long line costs one copy, not one per block)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, part: bytes) -> None:
        if part:
            self.parts.append(part)
            self.size += len(part)

    def take(self, tail: bytes = b"") -> bytes:
        """Everything pending, then ``tail``; pending is empty afterwards."""
        data = b"".join([*self.parts, tail]) if self.parts else tail
        self.parts, self.size = [], 0
        return data


def _one(data: bytes, source_index: int, consumed: int, texts: int, invalid: int, empty: bool = False) -> DocBatch:
    n = 0 if empty or not data else 1
    offsets = np.array([0, len(data)] if n else [0], np.int64)
    return DocBatch(data, offsets, source_index, consumed, texts, invalid, MAX_NEWLINES)


def _batch(docs: list[bytes], source_index: int, consumed: int, texts: int, invalid: int) -> DocBatch:
    offsets = np.zeros(len(docs) + 1, np.int64)
    if docs:
        np.cumsum(np.fromiter(map(len, docs), np.int64, len(docs)), out=offsets[1:])
    return DocBatch(b"".join(docs), offsets, source_index, consumed, texts, invalid, MAX_NEWLINES)


def _lines(data: bytes, source_index: int, consumed: int, invalid: int) -> DocBatch:
    """Complete lines of text as documents without their newlines (the last line may lack its
    newline: the end of the input). NFC never adds or removes a newline, and byte 0x0A never
    occurs inside a multi-byte character, so the cuts are found on the UTF-8 bytes."""
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    ends = newlines - np.arange(len(newlines))
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data) - len(newlines))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    stripped = data.replace(b"\n", b"") if len(newlines) else data
    return DocBatch(stripped, offsets, source_index, consumed, len(ends), invalid, MAX_NEWLINES)


def _parquet_batches(shard: Shard, errors: str, normalize: bool, batch_bytes: int) -> Iterator[DocBatch]:
    source: Source = shard.source
    pf = open_parquet(source)
    meta = pf.metadata
    row = sum(meta.row_group(rg).num_rows for rg in range(shard.start))
    for rg in range(shard.start, shard.end):
        group = meta.row_group(rg)
        size = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        try:
            column = pf.read_row_group(rg, columns=[source.field]).column(0)
        except KeyError:
            raise InputError(f"{source.label}: no column {source.field!r}; pick the text column with "
                             "parquet_column (CLI: --parquet-column)") from None
        values = column.to_pylist()
        docs: list[bytes] = []
        invalid = 0
        for i, value in enumerate(values):
            if isinstance(value, bytes):
                value, bad = decode(value, errors, f"{source.label}: row {row + i} (row group {rg})")
                invalid += bad
            elif not isinstance(value, str):
                what = "null" if value is None else type(value).__name__
                raise InputError(f"{source.label}: row {row + i} (row group {rg}): column {source.field!r} holds "
                                 f"{what}, expected a string")
            docs.append(nfc_utf8(value) if normalize else plain_utf8(value))
        row += len(values)
        yield _batch(docs, source.index, size, len(docs), invalid)

