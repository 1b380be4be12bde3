"""Normalization and chunking: text to bytes the way the original BytePiece sees it.

Text is NFC-normalized and UTF-8 encoded, then cut into *chunks* that are segmented
independently. This module is the one home of both rules: the regexes below are the
specification (the original's), ``bytepiece.kernels.chunking`` implements them on UTF-8 bytes
for the hot paths (encoding cuts inside the encode kernels; training calls ``training_jobs``,
which cuts a small buffer by the regexes themselves: nothing to compile), and a property test
checks that the two agree.

- encoding: ``.*\\n+|.+`` on the NFC text, uncapped;
- training: ``.{0,10000}\\n{1,100}|.{1,10000}`` (``\\d|[^\\n\\d]{0,10000}\\n{1,100}|[^\\n\\d]{1,10000}``
  when digits are isolated); a plain-text line is a text of its own, so there newline runs are
  capped at one per chunk.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import numpy.typing as npt

from .errors import InputError

# bound once: the batch join calls them per text, where an attribute lookup is measurable
_nfc = unicodedata.normalize
_is_nfc = unicodedata.is_normalized

if TYPE_CHECKING:
    from .corpus import DocBatch

NFC = "nfc"
RAW = "none"
NORMALIZATIONS = (NFC, RAW)
Normalization = Literal["nfc", "none"]

TRAINING_MAX_CHUNK_CHARS = 10000
TRAINING_MAX_NEWLINES = 100


def to_utf8(text: str | bytes, normalization: str = NFC) -> bytes:
    """UTF-8 bytes of ``text`` after NFC (unless ``normalization == "none"``).

    ``bytes`` input that is not valid UTF-8 cannot be normalized; a byte-level model can still
    encode it, so it passes through unchanged.
    """
    if isinstance(text, str):
        if normalization == NFC and not text.isascii():
            text = unicodedata.normalize("NFC", text)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(
                f"text contains a lone surrogate {text[e.start]!r} at index {e.start}, which has no UTF-8 encoding; "
                "fix the text (e.g. decode the source with errors='replace')"
            ) from None
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        if normalization == NFC and not data.isascii():
            try:
                return unicodedata.normalize("NFC", data.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                return data
        return data
    raise InputError(f"expected str or bytes to encode, got {type(text).__name__}")


def join_texts(texts: list, normalization: str, first_index: int = 0) -> tuple[bytes, npt.NDArray[np.int64]]:
    """The normalized UTF-8 of all texts, concatenated, and the byte offsets of each.

    Measured per MB of lines, the cost is in the per-text Python calls, so: a batch whose first
    text is ASCII is joined and checked as a whole (code and most English need nothing else);
    otherwise each text is encoded in one comprehension, normalized only when it is neither
    ASCII nor already NFC. Anything unusual (a non-text item, a lone surrogate, invalid UTF-8)
    takes the careful per-text path, which also names a bad item (``texts`` being items
    ``first_index`` on of the caller's batch)."""
    n = len(texts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n == 0:
        return b"", offsets
    first = texts[0]
    kind = type(first)
    try:
        if (kind is str or kind is bytes) and first.isascii():
            joined: Any = ("" if kind is str else b"").join(texts)
            if joined.isascii():
                np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=n), out=offsets[1:])
                if offsets[-1] == len(joined):
                    return (joined.encode("ascii") if kind is str else joined), offsets
        if kind is str:
            if normalization == NFC:
                datas = [t.encode() if t.isascii() else _nfc("NFC", t).encode() for t in texts]
            else:
                datas = [t.encode() for t in texts]
        elif kind is bytes:
            if normalization == NFC:
                datas = [b if b.isascii() or _is_nfc("NFC", b.decode()) else _nfc("NFC", b.decode()).encode()
                         for b in texts]
            else:
                datas = texts
        else:
            return _join_each(texts, offsets, normalization, first_index)
        data = b"".join(datas)
        np.cumsum(np.fromiter(map(len, datas), dtype=np.int64, count=n), out=offsets[1:])
    except (TypeError, AttributeError, ValueError):  # not all str/bytes, surrogates, invalid UTF-8
        return _join_each(texts, offsets, normalization, first_index)
    if offsets[-1] != len(data):  # buffers whose len() is not their size in bytes
        return _join_each(texts, offsets, normalization, first_index)
    return data, offsets


def _join_each(texts: list, offsets: npt.NDArray[np.int64], normalization: str, first_index: int
               ) -> tuple[bytes, npt.NDArray[np.int64]]:
    datas = []
    for i, text in enumerate(texts):
        try:
            datas.append(to_utf8(text, normalization))
        except InputError as e:
            if not isinstance(text, (str, bytes, bytearray, memoryview)):
                raise bad_batch_item(texts, first_index) from e
            raise InputError(f"encode_batch: item {first_index + i}: {e}") from e
    np.cumsum(np.fromiter(map(len, datas), dtype=np.int64, count=len(datas)), out=offsets[1:])
    return b"".join(datas), offsets


def bad_batch_item(texts: list, first_index: int = 0, where: str = "encode_batch") -> InputError:
    """The error for the first item of ``texts`` (items ``first_index`` on of the caller's
    batch) that is not text; called once the fast path failed, so the scan costs nothing in the
    common case."""
    for i, text in enumerate(texts, first_index):
        if not isinstance(text, (str, bytes, bytearray, memoryview)):
            shown = repr(text)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return InputError(
                f"{where}: item {i} is {shown} of type {type(text).__name__}, not str or bytes; "
                "remove or convert it (e.g. replace None with '')"
            )
    return InputError(f"{where}: every item must be str or bytes")


@lru_cache(maxsize=8)
def _training_regex(max_chars: int, isolate_digits: bool, max_newlines: int) -> re.Pattern[str]:
    n, k = max_chars, max_newlines
    if isolate_digits:
        return re.compile(r"\d|[^\n\d]{0,%d}\n{1,%d}|[^\n\d]{1,%d}" % (n, k, n))
    return re.compile(r".{0,%d}\n{1,%d}|.{1,%d}" % (n, k, n))


def training_chunks(
    text: str, *, isolate_digits: bool = False, max_chars: int = TRAINING_MAX_CHUNK_CHARS,
    max_newlines: int = TRAINING_MAX_NEWLINES,
) -> Iterator[bytes]:
    """Chunks of one training text, as UTF-8 bytes (NFC, capped lengths, optional lone digits).

    The specification of training chunks, in the original's own terms; training itself cuts
    with :func:`chunk_bounds`, and ``tests/test_chunking.py`` checks that the two agree."""
    text = unicodedata.normalize("NFC", text)
    for match in _training_regex(max_chars, isolate_digits, max_newlines).finditer(text):
        yield match.group().encode("utf-8", "surrogatepass")


_ENCODING_CHUNK = re.compile(r".*\n+|.+")
_ENCODING_CHUNK_BYTES = re.compile(rb".*\n+|.+")


@overload
def chunks(text: str) -> list[str]: ...
@overload
def chunks(text: bytes) -> list[bytes]: ...


def chunks(text: str | bytes) -> list[str] | list[bytes]:
    """The chunks encoding segments independently (after NFC): every run of newlines ends one.
    On UTF-8 bytes the cuts are the same (byte 0x0A is never part of a multi-byte character),
    so encoding the chunks one by one gives exactly the tokens of the whole text."""
    if isinstance(text, str):
        return _ENCODING_CHUNK.findall(text)
    return _ENCODING_CHUNK_BYTES.findall(text)


# -- training chunks on bytes (the kernels) ------------------------------------------------------

#: bytes of chunks grouped into one job of a training pass
JOB_BYTES = 1 << 20

#: (buffer, chunk bounds, first chunk, end chunk): one unit of work of a training pass
Job = tuple[np.ndarray, np.ndarray, int, int]


@lru_cache(maxsize=1)
def digit_table() -> np.ndarray:
    """1 for every code point that Python's ``re`` matches with ``\\d`` (Unicode category Nd)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    chars = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    for m in re.finditer(r"\d", chars):
        table[ord(m.group())] = 1
    return table


#: buffers up to this size are cut by the regexes (about 10 ms a MB), not by the kernel:
#: README's training job then never compiles it (1.7 s of a first run's CPU)
PYTHON_CHUNKS_MAX = 2 << 20


def chunk_bounds(buf: np.ndarray, text_ends: np.ndarray, *, max_newlines: int = TRAINING_MAX_NEWLINES,
                 isolate_digits: bool = False, max_chars: int = TRAINING_MAX_CHUNK_CHARS) -> np.ndarray:
    """Training chunk boundaries ``[0, e1, ..., len]`` of the texts ``buf[text_ends[i-1]:text_ends[i]]``."""
    from .kernels.stand_ins import small

    if small(len(buf), PYTHON_CHUNKS_MAX):
        bounds = chunk_bounds_by_regex(buf.tobytes(), text_ends, max_chars, max_newlines, isolate_digits)
        if bounds is not None:
            return bounds
    from .kernels.chunking import chunk_boundaries

    digits = digit_table() if isolate_digits else np.zeros(0, dtype=np.uint8)
    return chunk_boundaries(buf, text_ends, max_chars, max_newlines, digits)


def chunk_bounds_by_regex(data: bytes, text_ends: np.ndarray, max_chars: int, max_newlines: int,
                          isolate_digits: bool) -> np.ndarray | None:
    """:func:`chunk_bounds` by the specification's regexes, or None where ``data`` is not UTF-8
    (the kernel cuts any bytes). Matches are contiguous and cover each text, so a chunk ends
    where the one before it ended plus its length in UTF-8."""
    regex = _training_regex(max_chars, isolate_digits, max_newlines)
    out = [0]
    a = 0
    for b in text_ends.tolist():
        try:
            text = data[a:b].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if len(text) == b - a:  # ASCII: characters are bytes
            out += [a + m.end() for m in regex.finditer(text)]
        else:
            end = a
            for m in regex.finditer(text):
                end += len(m.group().encode("utf-8"))
                out.append(end)
        a = b
    return np.array(out, dtype=np.int64)


def training_jobs(batch: DocBatch, *, isolate_digits: bool = False, job_bytes: int | None = None) -> Iterator[Job]:
    """A batch of training texts cut into chunks and grouped into jobs of about ``job_bytes``."""
    buf = np.frombuffer(batch.data, dtype=np.uint8)
    if not len(buf):
        return
    bounds = chunk_bounds(buf, batch.offsets[1:], max_newlines=batch.max_newlines, isolate_digits=isolate_digits)
    for lo, hi in job_ranges(bounds, job_bytes):
        yield buf, bounds, lo, hi


def job_ranges(bounds: np.ndarray, job_bytes: int | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive chunk ranges ``(lo, hi)`` of about ``job_bytes`` (at least one chunk each)."""
    n_chunks = len(bounds) - 1
    step = JOB_BYTES if job_bytes is None else job_bytes
    lo = 0
    while lo < n_chunks:
        hi = int(np.searchsorted(bounds, bounds[lo] + step, side="right")) - 1
        hi = min(max(hi, lo + 1), n_chunks)
        yield lo, hi
        lo = hi
