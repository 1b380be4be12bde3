"""Input files of a corpus: what each one is, and how to open it as a stream of bytes.

A :class:`Source` is decided once per input, from its name and first bytes, so plain text,
JSON Lines and Parquet files (gzip or zstd compressed) can be mixed in one command:

- the format comes from the name under any compression suffix (``format_of``): ``.jsonl``,
  ``.ndjson`` and ``.json`` are JSON Lines, ``.parquet``/``.pq`` (or the Parquet magic bytes)
  Parquet, anything else plain text (one document per line); only when a ``jsonl_field`` is
  given explicitly is a name without a known text extension (and standard input, which has no
  name) read as JSON Lines. docs/formats.md states the rule for users;
- compression comes from the magic bytes, never from the name (a gzip file named ``.txt`` is
  still decompressed, and a ``.gz`` name on plain text does no harm); compressed data must end
  where a gzip member or zstd frame ends;
- input that is neither text nor a supported container is refused with a message, never
  tokenized as garbage (:mod:`.binary`).

Paths with a URL scheme (``s3://``, ``gs://``, ``http://``, ...) are opened with fsspec when
it is installed and supports the scheme, so Dask workers can read inputs they share.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Union, cast

from ..errors import InputError
from . import once
from .binary import check_block, check_head

PathLike = Union[str, os.PathLike]
Format = Literal["text", "jsonl", "parquet"]
Compression = Literal["none", "gzip", "zstd"]
#: what a document of a plain-text file is: each line (without its newline) or the whole file
TextDocument = Literal["line", "file"]
TEXT_DOCUMENTS = ("line", "file")

DEFAULT_FIELD = "text"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".py", ".c", ".h", ".log")
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 1 << 16
_SPOOL_BLOCK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One input: where it is (``path``: a file path or URL), what it holds and how it is packed."""

    path: str
    format: Format
    compression: Compression
    field: str  # JSON Lines field or Parquet column holding the text
    size: int  # bytes on disk (compressed size for compressed files)
    label: str  # the name shown to users ("<stdin>" for a spooled standard input)
    index: int = 0  # position among the corpus inputs
    text_document: TextDocument = "line"  # plain text: a document per line, or the whole file
    once: bool = False  # read once, as it arrives (standard input or a pipe; size unknown: -1)

    @property
    def splittable(self) -> bool:
        """Whether workers can read byte ranges of it (an uncompressed file of text read a line
        per document, or of JSON Lines)."""
        return self.compression == "none" and self.format != "parquet" and not self.once and not (
            self.format == "text" and self.text_document == "file")


def is_url(path: str) -> bool:
    head, sep, _ = path.partition("://")
    return bool(sep) and head.isidentifier() and len(head) > 1


def open_raw(path: str) -> IO[bytes]:
    """The file's bytes as a binary stream (local path or fsspec URL: seekable; an input read
    once: not, see :mod:`.once`)."""
    stream = once.take(path)
    if stream is not None:
        return stream
    if is_url(path):
        try:
            import fsspec
        except ImportError:
            raise InputError(f"{path}: reading URLs needs fsspec; pip install fsspec (plus the filesystem's package)") from None
        try:
            return fsspec.open(path, "rb").open()
        except (ImportError, ValueError) as e:
            raise InputError(f"{path}: this fsspec cannot open it ({e})") from None
    return open(path, "rb")


def open_stream(source: Source) -> tuple[IO[bytes], IO[bytes]]:
    """(decompressed reader, raw file): the raw file's position measures progress."""
    raw = open_raw(source.path)
    try:
        if source.compression == "gzip":
            return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw
        if source.compression == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError:
                raise InputError(f"{source.label} is zstd-compressed; reading it needs the zstd extra: "
                                 'pip install "bytepiece-tk[zstd]"') from None
            from .zstd import ZstdReader

            return cast(IO[bytes], ZstdReader(raw)), raw
    except BaseException:
        raw.close()
        raise
    return raw, raw


def _file_size(path: str) -> int:
    if is_url(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(path)
        return int(fs.size(inner))
    return os.stat(path).st_size


def _strip_compression_suffix(name: str) -> str:
    low = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def format_of(name: str, jsonl_field_given: bool) -> Format:
    """The format an input of this name is read in (before looking at its content, which can
    only make it Parquet): the rule of docs/formats.md. ``name`` is ``"-"`` for standard input."""
    base = "" if name == "-" else _strip_compression_suffix(os.path.basename(name)).lower()
    if base.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if base.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if base.endswith(TEXT_SUFFIXES) or not jsonl_field_given:
        return "text"
    return "jsonl"


def local_problem(path: str, label: str) -> str | None:
    """Why the local ``path`` cannot be a corpus file as it is, or None: it is missing, a loop of
    symbolic links, a directory, a device or socket; a pipe can only be read once (open_corpus
    copies it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"corpus path {label} is a symbolic link loop; point the link at a file"
        if e.errno == errno.ENOENT:
            if os.path.islink(path):
                return f"corpus path {label} is a symbolic link to a file that does not exist"
            return f"corpus file {label} does not exist"
        return f"cannot read {label}: {e.strerror or e}"
    if stat.S_ISDIR(mode):
        return f"corpus path {label} is a directory; pass the files in it"
    if stat.S_ISFIFO(mode):
        return (f"corpus path {label} is a pipe, which can be read only once; pass it to open_corpus (which copies "
                "it), or save it to a file first")
    if not stat.S_ISREG(mode):
        kind = ("character device" if stat.S_ISCHR(mode) else "block device" if stat.S_ISBLK(mode)
                else "socket" if stat.S_ISSOCK(mode) else "special file")
        return f"corpus path {label} is a {kind}, not a file; pass '-' to read standard input"
    return None


def check_field_names(jsonl_field: str | None, parquet_column: str | None) -> None:
    """An empty field or column name is a mistake (no record has it), not a request for the default."""
    if jsonl_field == "":
        raise InputError("the JSON Lines field name is empty; name the field holding the text with jsonl_field (CLI: --jsonl-field)")
    if parquet_column == "":
        raise InputError("the Parquet column name is empty; name the column holding the text with parquet_column (CLI: --parquet-column)")


def check_text_document(text_document: str) -> TextDocument:
    if text_document not in TEXT_DOCUMENTS:
        raise InputError(f"text_document must be 'line' (a document per line) or 'file' (the whole file), got "
                         f"{text_document!r}")
    return text_document  # type: ignore[return-value]


def describe_source(path: PathLike, *, index: int = 0, jsonl_field: str | None = None,
                    parquet_column: str | None = None, label: str | None = None, name: str | None = None,
                    text_document: TextDocument = "line", head: bytes | None = None) -> Source:
    """Inspect one input (exists, readable, not binary) and decide how to read it. ``name`` is
    the name its format is decided from (default: ``path``; ``"-"`` for standard input, and the
    original name of a copied pipe). An input read once (:mod:`.once`) gives its ``head``."""
    path = os.fspath(path)
    label = label or path
    streamed = head is not None
    if not streamed:
        if not is_url(path) and (problem := local_problem(path, label)) is not None:
            raise InputError(problem)
        try:
            with open_raw(path) as f:
                head = f.read(_SNIFF_BYTES)
        except OSError as e:
            raise InputError(f"cannot read {label}: {e.strerror or e}") from None
    assert head is not None
    if head.startswith(_GZIP_MAGIC):
        compression: Compression = "gzip"
    elif head.startswith(_ZSTD_MAGIC):
        compression = "zstd"
    else:
        compression = "none"
    fmt = "parquet" if head.startswith(_PARQUET_MAGIC) else format_of(name or path, jsonl_field is not None)
    if compression == "none" and fmt != "parquet":
        check_head(head, label)
    if fmt == "parquet" and compression != "none":
        raise InputError(f"{label}: a compressed Parquet file; Parquet compresses internally, decompress the file first")
    field = (parquet_column if fmt == "parquet" else jsonl_field) or DEFAULT_FIELD
    if streamed:
        if fmt == "parquet":
            raise InputError(f"{label}: Parquet cannot be read as it arrives (the reader needs the file's end); "
                             "save it to a file first")
        return Source(path, fmt, compression, field, -1, label, index, text_document, once=True)
    # Absolute, because workers of a cluster read it and their working directory is not ours.
    where = path if is_url(path) else os.path.abspath(path)
    source = Source(where, fmt, compression, field, _file_size(path), label, index, text_document)
    if compression != "none":
        _check_decompressed_head(source)
    return source


def _check_decompressed_head(source: Source) -> None:
    reader, raw = open_stream(source)
    try:
        head = reader.read(_SNIFF_BYTES)
    except Exception as e:  # OSError, EOFError, zlib.error, ZstdError, ZstdFormatError
        raise InputError(f"{source.label}: corrupt or truncated {source.compression} data ({e})") from None
    finally:
        reader.close()
        raw.close()
    check_head(head, source.label)


def expand_url_globs(paths: Iterable[PathLike]) -> list[PathLike]:
    """URL patterns (``s3://bucket/corpus/*.jsonl.gz``) replaced by the files they match, in
    sorted order; the shell expands local patterns, nothing expands remote ones."""
    out: list[PathLike] = []
    for path in paths:
        text = os.fspath(path)
        if not (is_url(text) and any(c in text for c in "*?[")):
            out.append(path)
            continue
        try:
            import fsspec
        except ImportError:
            raise InputError(f"{text}: reading URLs needs fsspec; pip install fsspec (plus the filesystem's package)") from None
        fs, pattern = fsspec.core.url_to_fs(text)
        matches = sorted(fs.glob(pattern))
        if not matches:
            raise InputError(f"{text}: no file matches this pattern")
        out.extend(fs.unstrip_protocol(m) for m in matches)
    return out


def describe_sources(paths: Iterable[PathLike], *, jsonl_field: str | None = None,
                     parquet_column: str | None = None, labels: Iterable[str] | None = None,
                     names: Iterable[str | None] | None = None, text_document: TextDocument = "line",
                     heads: Iterable[bytes | None] | None = None) -> list[Source]:
    """Every input described (``labels`` show them, ``names`` decide their formats: see
    :func:`describe_source`)."""
    paths = list(paths)
    shown = list(labels) if labels is not None else [None] * len(paths)
    format_names = list(names) if names is not None else [None] * len(paths)
    if not len(shown) == len(format_names) == len(paths):
        raise InputError("labels and names must name every path")
    if not paths:
        raise InputError("no corpus files given")
    check_field_names(jsonl_field, parquet_column)
    text_document = check_text_document(text_document)
    sniffed = list(heads) if heads is not None else [None] * len(paths)
    return [describe_source(p, index=i, jsonl_field=jsonl_field, parquet_column=parquet_column, label=label,
                            name=name, text_document=text_document, head=head)
            for i, (p, label, name, head) in enumerate(zip(paths, shown, format_names, sniffed))]


# -- inputs that are not files: spooled so that several passes (and several workers) can read them

def spool_stdin(stream: IO[bytes] | None = None, directory: str | None = None) -> Path:
    """Copy standard input (or ``stream``) to a temporary file and return its path; the caller
    deletes it. Compressed input stays compressed (the reader recognises it)."""
    return spool_stream(stream if stream is not None else stdin_buffer(), directory, "<stdin>")


def stdin_buffer() -> IO[bytes]:
    """Standard input as bytes; a closed one (``<&-``) is an error that says so."""
    stdin = sys.stdin
    buffer = getattr(stdin, "buffer", None) if stdin is not None else None
    if buffer is None or buffer.closed:
        raise InputError("standard input is closed; pipe the corpus in or name its files")
    return buffer


def spool_stream(stream: IO[bytes], directory: str | None, label: str) -> Path:
    """Copy a stream that can be read only once (standard input, a pipe, a file that reports
    no size) to a temporary file; the caller deletes it. Uncompressed binary data stops the
    copy where it is found, so ``/dev/zero`` does not fill the disk."""
    fd, name = tempfile.mkstemp(prefix="bytepiece-stdin-", suffix=".spool", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            offset, compressed = 0, False
            while block := stream.read(_SPOOL_BLOCK):
                if offset == 0:
                    compressed = block.startswith((_GZIP_MAGIC, _ZSTD_MAGIC, _PARQUET_MAGIC))
                if not compressed:
                    check_block(block, label, offset)
                f.write(block)
                offset += len(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def spool_texts(texts: Iterable, directory: str | None = None, *, errors: str = "replace") -> tuple[Path, int, int]:
    """Write texts (``str``, or ``bytes`` holding UTF-8) to a temporary JSON Lines file (field
    ``text``); returns (path, number of texts, invalid UTF-8 sequences replaced in bytes texts)."""
    from .utf8 import decode

    fd, name = tempfile.mkstemp(prefix="bytepiece-texts-", suffix=".jsonl", dir=directory)
    n = invalid = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for i, text in enumerate(texts):
                if isinstance(text, (bytes, bytearray, memoryview)):
                    text, bad = decode(bytes(text), errors, f"text {i}")
                    invalid += bad
                elif not isinstance(text, str):
                    raise InputError(f"text {i} is a {type(text).__name__}; a corpus yields str (or UTF-8 bytes)")
                try:
                    f.write(json.dumps({DEFAULT_FIELD: text}, ensure_ascii=False))
                except UnicodeEncodeError:
                    raise InputError(f"text {i} contains a lone surrogate, which has no UTF-8 encoding; "
                                     "fix the text (e.g. decode its source with errors='replace')") from None
                f.write("\n")
                n += 1
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), n, invalid
