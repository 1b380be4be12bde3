"""Training corpora: streaming readers that turn files or texts into UTF-8 batches.

A corpus is read twice (n-gram counting, then piece counting) and never held in memory as a
whole: every reader yields :class:`Batch` objects of roughly ``batch_bytes`` bytes of NFC
UTF-8 text plus the end offsets of the texts in it (chunks never cross a text boundary).

Readers:

- :class:`TextFiles`: plain text files, one text per line (the line's ``\\n`` included, as when
  the original is fed ``open(path)`` line by line; lines are split at ``\\n`` only, ``\\r`` is
  kept as a byte), or JSON Lines with ``jsonl_field`` (each line an object whose field holds
  the text). Files may be gzip-compressed (detected by their magic bytes). Invalid UTF-8 is
  replaced by U+FFFD (the count is reported) or, with ``errors="strict"``, is an error naming
  the file and line.
- :class:`Texts`: any re-iterable of ``str`` (or UTF-8 ``bytes``): each item is one text. A
  one-shot iterator (a generator) is spooled to a temporary file first.
- :func:`spool_stdin`: copies standard input to a temporary file (two passes are needed).

Very long lines are cut only where the cut is also a chunk boundary, so they never need to be
held whole: a line without a newline is emitted in runs of complete 10000-character chunks,
each cut made before an ASCII or CJK ideograph byte, where NFC cannot join the two sides.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import struct
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Union

import numpy as np

from ..errors import InputError

PathLike = Union[str, os.PathLike]

DEFAULT_BATCH_BYTES = 4 << 20
MAX_CHUNK_CHARS = 10000
MAX_NEWLINES = 100
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Batch:
    """UTF-8 text (``data``) with the end offsets of its texts; ``max_newlines`` caps newline runs
    inside a chunk (1 when every line is a text of its own)."""

    data: bytes
    text_ends: np.ndarray
    max_newlines: int = MAX_NEWLINES
    consumed: int = 0  # input bytes consumed (for progress)
    n_texts: int = 0


@dataclass
class ReadStats:
    """What a full read of the corpus saw."""

    texts: int = 0
    bytes: int = 0
    invalid_utf8: int = 0
    files: list = field(default_factory=list)


class Corpus:
    """Base class: something that can be read (several times) as batches."""

    #: total input size in bytes when known (for progress bars)
    total_bytes: int | None = None

    def __init__(self) -> None:
        self.stats = ReadStats()

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
        raise NotImplementedError

    def close(self) -> None:
        """Release temporary files, if any."""

    def describe(self) -> str:
        return type(self).__name__


# -- invalid UTF-8 accounting ------------------------------------------------------------------

class _Replacer:
    """A codec error handler that replaces like ``errors="replace"`` and counts the replacements."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None

    def __call__(self, exc: UnicodeError):
        if not isinstance(exc, UnicodeDecodeError):
            raise exc
        self.count += 1
        if self.first is None:
            self.first = exc.start
        return ("\ufffd", exc.end)


_HANDLER_NAME = "bytepiece.training.count_replace"
_current_replacer: list[_Replacer] = []


def _dispatch(exc: UnicodeError):
    return _current_replacer[-1](exc)


codecs.register_error(_HANDLER_NAME, _dispatch)


def _decode(raw: bytes, errors: str, where: str, line_base: int, stats: ReadStats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if errors == "strict":
            line = line_base + raw.count(b"\n", 0, e.start) + 1
            raise InputError(
                f"{where}: invalid UTF-8 at line {line} ({e.reason}, byte {raw[e.start:e.start + 1]!r}); "
                "fix the file or train with errors='replace' (invalid bytes become U+FFFD)"
            ) from None
    replacer = _Replacer()
    _current_replacer.append(replacer)
    try:
        text = raw.decode("utf-8", _HANDLER_NAME)
    finally:
        _current_replacer.pop()
    stats.invalid_utf8 += replacer.count
    return text


def _nfc_utf8(text: str, raw: bytes | None = None) -> bytes:
    """NFC UTF-8 of ``text``; reuses ``raw`` (the bytes ``text`` was decoded from) when NFC
    changes nothing and the decoding replaced nothing (U+FFFD occurs nowhere in ``text``)."""
    if raw is not None and "\ufffd" in text:
        raw = None
    if text.isascii():
        return raw if raw is not None else text.encode("ascii")
    normal = unicodedata.normalize("NFC", text)
    if normal is text and raw is not None:
        return raw
    try:
        return normal.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            f"text contains a lone surrogate {normal[e.start]!r}, which has no UTF-8 encoding; "
            "fix the text (e.g. decode its source with errors='replace')"
        ) from None


# -- where a long line may be cut --------------------------------------------------------------

def _safe_cut(data: bytes, start: int) -> int:
    """Largest index ``q > start`` such that ``data[q]`` begins an ASCII character or a CJK
    unified ideograph (lead bytes 0xE4-0xE9): NFC never combines across such a cut. -1 if none."""
    q = len(data) - 1
    while q > start:
        c = data[q]
        if c < 0x80 or 0xE4 <= c <= 0xE9:
            return q
        q -= 1
    return -1


def _char_prefix(text: str, n_chars: int) -> int:
    """Largest multiple of ``n_chars`` characters not exceeding ``len(text)``."""
    return (len(text) // n_chars) * n_chars


# -- readers ----------------------------------------------------------------------------------

def _open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(reader, raw file): the reader decompresses gzip transparently; the raw file's position
    measures progress."""
    raw = open(path, "rb")
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


class TextFiles(Corpus):
    """Plain-text (one text per line) or JSON Lines files, optionally gzip-compressed."""

    def __init__(self, paths: PathLike | Iterable[PathLike], *, jsonl_field: str | None = None,
                 errors: str = "replace", max_chunk_chars: int = MAX_CHUNK_CHARS,
                 labels: Iterable[str] | None = None) -> None:
        super().__init__()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        # names used in messages and descriptions (e.g. "<stdin>" for a spooled copy)
        self.labels = [str(p) for p in self.paths] if labels is None else [str(x) for x in labels]
        if len(self.labels) != len(self.paths):
            raise InputError("labels must name every path")
        if errors not in ("replace", "strict"):
            raise InputError(f"errors must be 'replace' or 'strict', got {errors!r}")
        self.errors = errors
        self.jsonl_field = jsonl_field
        self.max_chunk_chars = max_chunk_chars
        for p in self.paths:
            if not p.exists():
                raise InputError(f"corpus file {p} does not exist")
            if p.is_dir():
                raise InputError(f"corpus path {p} is a directory; pass the text files in it")
        self.total_bytes = sum(p.stat().st_size for p in self.paths)

    def describe(self) -> str:
        names = ", ".join(self.labels[:3]) + (f" (+{len(self.paths) - 3} more)" if len(self.paths) > 3 else "")
        return names + (f" [jsonl field {self.jsonl_field!r}]" if self.jsonl_field else "")

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
        self.stats = ReadStats(files=list(self.labels))
        consumed_before = 0
        for path, label in zip(self.paths, self.labels):
            reader, raw = _open_binary(path)
            try:
                if self.jsonl_field is not None:
                    yield from self._jsonl_batches(label, reader, raw, consumed_before, batch_bytes)
                else:
                    yield from self._line_batches(label, reader, raw, consumed_before, batch_bytes)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                if isinstance(e, (EOFError, gzip.BadGzipFile)):
                    raise InputError(f"{label}: corrupt or truncated gzip data ({e})") from None
                raise
            finally:
                reader.close()
                raw.close()
            consumed_before += path.stat().st_size

    def _line_batches(self, path, reader, raw, base, batch_bytes) -> Iterator[Batch]:
        stats = self.stats
        pending = b""
        carry = ""  # NFC text of an unfinished long line after its last complete chunk
        lines_done = 0
        n_chars = self.max_chunk_chars
        eof = False
        while not eof:
            block = reader.read(batch_bytes)
            eof = not block
            data = pending + block if pending else block
            pending = b""
            if not data and not carry:
                break
            if eof:
                complete = data
            else:
                k = data.rfind(b"\n")
                if k >= 0:
                    complete, pending = data[: k + 1], data[k + 1:]
                else:
                    # A line longer than a block: emit whole chunks of it, cut where NFC is safe.
                    q = _safe_cut(data, 0)
                    if q <= 0:
                        pending = data
                        continue
                    text = carry + _decode(data[:q], self.errors, str(path), lines_done, stats)
                    pending = data[q:]
                    text = unicodedata.normalize("NFC", text) if not text.isascii() else text
                    cut = _char_prefix(text, n_chars)
                    carry = text[cut:]
                    if cut:
                        out = text[:cut].encode("utf-8")
                        stats.bytes += len(out)
                        yield Batch(out, np.array([len(out)], np.int64), MAX_NEWLINES, raw.tell() + base, 0)
                    continue
            if not complete and not carry:
                continue
            text = _decode(complete, self.errors, str(path), lines_done, stats)
            if carry:
                text = carry + text
                carry = ""
                out = _nfc_utf8(text)
            else:
                out = _nfc_utf8(text, complete)
            n_lines = out.count(b"\n")
            if out and not out.endswith(b"\n"):
                n_lines += 1
            lines_done += complete.count(b"\n")
            stats.texts += n_lines
            stats.bytes += len(out)
            # every line is a text of its own: chunk the block as one text with newline runs capped at 1
            yield Batch(out, np.array([len(out)], np.int64), 1, raw.tell() + base, n_lines)

    def _jsonl_batches(self, path, reader, raw, base, batch_bytes) -> Iterator[Batch]:
        field_name = self.jsonl_field
        builder = _BatchBuilder(batch_bytes)
        stats = self.stats
        for lineno, line in enumerate(reader, 1):
            if not line.strip():
                continue
            text_line = _decode(line, self.errors, str(path), lineno - 1, stats)
            try:
                obj = json.loads(text_line)
            except ValueError as e:
                raise InputError(f"{path}: line {lineno} is not valid JSON ({e})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}: line {lineno} is a JSON {type(obj).__name__}, expected an object with field {field_name!r}")
            if field_name not in obj:
                raise InputError(
                    f"{path}: line {lineno} has no field {field_name!r} (fields: {', '.join(map(str, list(obj)[:8])) or 'none'}); "
                    "pick the right --jsonl-field or fix the line"
                )
            value = obj[field_name]
            if not isinstance(value, str):
                raise InputError(f"{path}: line {lineno}: field {field_name!r} holds a {type(value).__name__}, expected a string")
            for batch in builder.add(_nfc_utf8(value)):
                batch.consumed = raw.tell() + base
                yield batch
        for batch in builder.flush():
            batch.consumed = raw.tell() + base
            yield batch
        stats.texts += builder.texts
        stats.bytes += builder.bytes


class _BatchBuilder:
    """Groups encoded texts into batches of about ``batch_bytes``."""

    def __init__(self, batch_bytes: int) -> None:
        self.batch_bytes = batch_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.texts = 0
        self.bytes = 0

    def add(self, data: bytes) -> Iterator[Batch]:
        self.texts += 1
        self.bytes += len(data)
        if not data:
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size >= self.batch_bytes:
            yield from self.flush()

    def flush(self) -> Iterator[Batch]:
        if not self.parts:
            return
        ends = np.cumsum(np.fromiter((len(p) for p in self.parts), np.int64, len(self.parts)))
        data = b"".join(self.parts) if len(self.parts) > 1 else self.parts[0]
        n = len(self.parts)
        self.parts, self.size = [], 0
        yield Batch(data, ends, MAX_NEWLINES, 0, n)


class Texts(Corpus):
    """A re-iterable collection of texts (``str``, or ``bytes`` holding UTF-8)."""

    def __init__(self, texts: Iterable, *, errors: str = "replace") -> None:
        super().__init__()
        if isinstance(texts, (str, bytes)):
            raise InputError("pass a list of texts, or a path as pathlib.Path / str to train on a file")
        if iter(texts) is texts:
            raise InputError("a one-shot iterator cannot be read twice; use spooled_texts() or pass a list")
        self.texts = texts
        self.errors = errors
        try:
            self.total_texts = len(texts)  # type: ignore[arg-type]
        except TypeError:
            self.total_texts = None

    def describe(self) -> str:
        return f"{self.total_texts if self.total_texts is not None else 'an iterable of'} texts"

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
        self.stats = ReadStats()
        builder = _BatchBuilder(batch_bytes)
        consumed = 0
        for i, text in enumerate(self.texts):
            if isinstance(text, str):
                data = _nfc_utf8(text)
            elif isinstance(text, (bytes, bytearray, memoryview)):
                raw = bytes(text)
                data = _nfc_utf8(_decode(raw, self.errors, f"text {i}", 0, self.stats), raw)
            else:
                raise InputError(f"text {i} is a {type(text).__name__}; a corpus yields str (or UTF-8 bytes)")
            consumed += len(data)
            for batch in builder.add(data):
                batch.consumed = consumed
                yield batch
        for batch in builder.flush():
            batch.consumed = consumed
            yield batch
        self.stats.texts = builder.texts
        self.stats.bytes = builder.bytes


class SpooledTexts(Corpus):
    """Texts from a one-shot iterator, written once to a temporary file (length-prefixed UTF-8)."""

    def __init__(self, texts: Iterable, *, errors: str = "replace", directory: str | None = None) -> None:
        super().__init__()
        fd, name = tempfile.mkstemp(prefix="bytepiece-corpus-", suffix=".spool", dir=directory)
        self.path = Path(name)
        self.errors = errors
        n = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for i, text in enumerate(texts):
                    if isinstance(text, str):
                        data = _nfc_utf8(text)
                    elif isinstance(text, (bytes, bytearray, memoryview)):
                        raw = bytes(text)
                        data = _nfc_utf8(_decode(raw, errors, f"text {i}", 0, self.stats), raw)
                    else:
                        raise InputError(f"text {i} is a {type(text).__name__}; a corpus yields str (or UTF-8 bytes)")
                    f.write(struct.pack("<Q", len(data)))
                    f.write(data)
                    n += 1
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        self.total_texts = n
        self.total_bytes = self.path.stat().st_size

    def describe(self) -> str:
        return f"{self.total_texts} spooled texts"

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[Batch]:
        invalid = self.stats.invalid_utf8
        self.stats = ReadStats(invalid_utf8=invalid)
        builder = _BatchBuilder(batch_bytes)
        with open(self.path, "rb") as f:
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                (n,) = struct.unpack("<Q", head)
                for batch in builder.add(f.read(n)):
                    batch.consumed = f.tell()
                    yield batch
            for batch in builder.flush():
                batch.consumed = f.tell()
                yield batch
        self.stats.texts = builder.texts
        self.stats.bytes = builder.bytes

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def __del__(self) -> None:  # best effort
        try:
            self.close()
        except Exception:
            pass


def spool_stdin(stream: IO[bytes] | None = None, directory: str | None = None) -> Path:
    """Copy standard input (or ``stream``) to a temporary file and return its path; the caller
    deletes it. Gzip input stays compressed (the file reader detects it)."""
    stream = stream if stream is not None else sys.stdin.buffer
    fd, name = tempfile.mkstemp(prefix="bytepiece-stdin-", suffix=".txt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                block = stream.read(1 << 20)
                if not block:
                    break
                f.write(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def as_corpus(corpus, *, jsonl_field: str | None = None, errors: str = "replace") -> tuple[Corpus, bool]:
    """Wrap what ``Trainer.train`` accepts as a :class:`Corpus`; the flag says whether it is a
    temporary one the caller must close.

    - a ``str`` or ``os.PathLike``: one file; a list/tuple whose items are all ``os.PathLike``
      (``pathlib.Path``): several files;
    - a :class:`Corpus`: used as is;
    - any other re-iterable: texts; a one-shot iterator is spooled to a temporary file.
    """
    if isinstance(corpus, Corpus):
        return corpus, False
    if isinstance(corpus, (str, os.PathLike)):
        return TextFiles([corpus], jsonl_field=jsonl_field, errors=errors), False
    if isinstance(corpus, (list, tuple)) and corpus and all(isinstance(p, os.PathLike) for p in corpus):
        return TextFiles(corpus, jsonl_field=jsonl_field, errors=errors), False
    if isinstance(corpus, (bytes, bytearray)):
        raise InputError("a corpus of bytes is ambiguous; pass a list of texts or a file path")
    try:
        it = iter(corpus)
    except TypeError:
        raise InputError(f"cannot train on a {type(corpus).__name__}; pass a file path, a list of paths or an iterable of str") from None
    if it is corpus:
        return SpooledTexts(corpus, errors=errors), True
    return Texts(corpus, errors=errors), False


# -- jobs: chunked batches for the map-reduce passes -------------------------------------------

JOB_BYTES = 2 << 20

#: (buffer, chunk bounds, first chunk, end chunk): one unit of work of a corpus pass
Job = tuple[np.ndarray, np.ndarray, int, int]


@lru_cache(maxsize=1)
def digit_table() -> np.ndarray:
    """1 for every code point that Python's ``re`` matches with ``\\d`` (Unicode category Nd)."""
    import re

    table = np.zeros(0x110000, dtype=np.uint8)
    chars = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    for m in re.finditer(r"\d", chars):
        table[ord(m.group())] = 1
    return table


def chunk_jobs(source: Corpus, batch_bytes: int, isolate_digits: bool,
               on_batch: Callable[[Batch], None] | None = None) -> Iterator[Job]:
    """The corpus cut into training chunks (DESIGN 5: ``.{0,10000}\\n{1,100}|.{1,10000}``, digits
    alone with ``isolate_digits``) and grouped into jobs of about ``JOB_BYTES``, streaming.
    ``on_batch(batch)`` runs after the last job of each batch (progress reporting)."""
    from ..kernels.ngrams import chunk_boundaries

    digits = digit_table() if isolate_digits else np.zeros(0, dtype=np.uint8)
    for batch in source.batches(batch_bytes):
        buf = np.frombuffer(batch.data, dtype=np.uint8)
        if len(buf):
            bounds = chunk_boundaries(buf, batch.text_ends, MAX_CHUNK_CHARS, batch.max_newlines, digits)
            n_chunks = len(bounds) - 1
            lo = 0
            while lo < n_chunks:
                hi = int(np.searchsorted(bounds, bounds[lo] + JOB_BYTES, side="right")) - 1
                hi = min(max(hi, lo + 1), n_chunks)
                yield buf, bounds, lo, hi
                lo = hi
        if on_batch is not None:
            on_batch(batch)
