"""Megatron's indexed dataset: the ``.bin`` / ``.idx`` pair that Megatron-LM, Megatron-Core,
NeMo and GPT-NeoX read for pretraining, written and read with numpy alone.

``PREFIX.bin`` holds the token ids of every sequence, concatenated, in the dtype Megatron picks
for the vocabulary (``uint16`` below 65,500 ids, else ``int32``; :func:`megatron_dtype`).
``PREFIX.idx`` is, little-endian throughout:

========================  =====================================================================
``MMIDIDX\\x00\\x00``      magic (9 bytes)
``uint64``                version, 1
``uint8``                 dtype code (uint16: 8, int32: 4; see :data:`DTYPE_CODES`)
``uint64``                number of sequences S
``uint64``                number of entries D in the document index (documents + 1)
``int32[S]``              tokens per sequence
``int64[S]``              byte offset of each sequence in the ``.bin``
``int64[D]``              document index: sequences ``doc[i]`` to ``doc[i + 1]`` make document i
========================  =====================================================================

bytepiece writes one sequence per document, so the document index is ``0, 1, ..., n``. The
index is written as the sequences arrive (their lengths stream to a scratch file beside it) and
completed at the end, so memory stays constant however many documents a file holds.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError
from ..io.read import map_array, open_regular

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
#: Megatron's dtype codes
DTYPE_CODES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
               8: np.uint16}
HEADER = struct.Struct("<9sQBQQ")
#: vocabularies below this size are stored as uint16 (Megatron's own threshold)
UINT16_LIMIT = 65500
_BLOCK = 1 << 20


def megatron_dtype(vocab_size: int) -> np.dtype:
    """The dtype Megatron's preprocessing picks for a vocabulary of ``vocab_size`` ids."""
    return np.dtype("<u2") if vocab_size < UINT16_LIMIT else np.dtype("<i4")


def dtype_code(dtype: np.dtype) -> int:
    for code, kind in DTYPE_CODES.items():
        if np.dtype(kind) == np.dtype(dtype).newbyteorder("="):
            return code
    raise ValueError(f"Megatron has no code for dtype {dtype}")


def index_path(prefix: str | os.PathLike) -> Path:
    """``PREFIX.idx`` for a prefix or for its ``PREFIX.bin``."""
    text = os.fspath(prefix)
    return Path((text[:-4] if text.endswith(".bin") else text) + ".idx")


class IndexBuilder:
    """The ``.idx`` of one ``.bin``, built as documents are added: :meth:`add` takes the tokens of
    each document of a batch, :meth:`write` emits the whole index to a binary file at the end."""

    def __init__(self, dtype: np.dtype, directory: str | os.PathLike) -> None:
        self.dtype = np.dtype(dtype)
        self.n_documents = 0
        self.n_tokens = 0
        self._lengths: IO[bytes] = tempfile.TemporaryFile(dir=os.fspath(directory), prefix=".bytepiece-megatron-")

    def add(self, lengths: npt.NDArray[np.integer]) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size and int(lengths.max()) > np.iinfo(np.int32).max:
            raise ModelFormatError("a document of more than 2**31 - 1 tokens does not fit Megatron's int32 lengths")
        self._lengths.write(lengths.astype("<i4").tobytes())
        self.n_documents += len(lengths)
        self.n_tokens += int(lengths.sum())

    def write(self, out: IO[bytes]) -> None:
        """Header, lengths, pointers, document index; streamed in blocks."""
        n = self.n_documents
        out.write(HEADER.pack(MAGIC, VERSION, dtype_code(self.dtype), n, n + 1))
        self._lengths.seek(0)
        while block := self._lengths.read(_BLOCK * 4):
            out.write(block)
        self._lengths.seek(0)
        pointer = 0
        itemsize = self.dtype.itemsize
        while block := self._lengths.read(_BLOCK * 4):
            lengths = np.frombuffer(block, dtype="<i4").astype(np.int64)
            ends = np.cumsum(lengths) * itemsize + pointer
            out.write(np.concatenate(([pointer], ends[:-1])).astype("<i8").tobytes())
            pointer = int(ends[-1])
        for lo in range(0, n + 1, _BLOCK):
            out.write(np.arange(lo, min(n + 1, lo + _BLOCK), dtype="<i8").tobytes())

    def close(self) -> None:
        self._lengths.close()


class MegatronIndex:
    """A ``.idx`` file, memory-mapped through the guarded read (a regular file, mapped from the
    descriptor that was checked): its dtype, counts and arrays, and :attr:`offsets`, the document
    boundaries in tokens (documents must be contiguous sequences of the ``.bin``, as every
    Megatron writer makes them: :meth:`check`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        f, st = open_regular(self.path, what="Megatron index", error=ModelFormatError)
        with f:
            raw = map_array(f, np.dtype(np.uint8), count=st.st_size)
        if len(raw) < HEADER.size:
            raise self._bad(f"it has {len(raw)} bytes, less than a header")
        magic, version, code, sequences, entries = HEADER.unpack(raw[:HEADER.size].tobytes())
        if magic != MAGIC:
            raise self._bad("it does not start with Megatron's MMIDIDX magic")
        if version != VERSION:
            raise self._bad(f"version {version} is not 1")
        if code not in DTYPE_CODES or not np.issubdtype(DTYPE_CODES[code], np.integer):
            raise self._bad(f"dtype code {code} is not an integer type")
        self.dtype = np.dtype(DTYPE_CODES[code]).newbyteorder("<")
        expected = HEADER.size + sequences * 12 + entries * 8
        if entries < 1 or len(raw) != expected:
            raise self._bad(f"it has {len(raw)} bytes but its header ({sequences} sequences, {entries} document "
                            f"index entries) needs {expected}")
        self.n_sequences = sequences
        self.n_documents = entries - 1
        start = HEADER.size
        self.lengths = raw[start:start + 4 * sequences].view("<i4")
        start += 4 * sequences
        self.pointers = raw[start:start + 8 * sequences].view("<i8")
        start += 8 * sequences
        self.document_index = raw[start:start + 8 * entries].view("<i8")
        if self.document_index[0] != 0 or self.document_index[-1] != sequences:
            raise self._bad("the document index does not run from 0 to the number of sequences")
        self.n_tokens = int(self.pointers[-1]) // self.dtype.itemsize + int(self.lengths[-1]) if sequences else 0
        self.offsets = DocumentOffsets(self)

    def _bad(self, why: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path} is not a Megatron index: {why}")

    def check(self, bin_size: int) -> None:
        """What an index must agree on with its ``.bin``: sequences that follow each other
        without gaps and fill it exactly (checked in blocks, in constant memory)."""
        itemsize = self.dtype.itemsize
        expected = 0
        for lo in range(0, self.n_sequences, _BLOCK):
            lengths = np.asarray(self.lengths[lo:lo + _BLOCK]).astype(np.int64)
            if lengths.min() < 0:
                raise self._bad("a sequence has a negative length")
            starts = expected + np.concatenate(([0], np.cumsum(lengths[:-1]))) * itemsize
            wrong = np.flatnonzero(starts != np.asarray(self.pointers[lo:lo + _BLOCK]))
            if len(wrong):
                raise self._bad(f"sequence {lo + int(wrong[0])} does not start where the previous one ends")
            expected = int(starts[-1] + lengths[-1] * itemsize)
        if expected != bin_size:
            raise self._bad(f"its sequences cover {expected} bytes but the .bin has {bin_size}")


class DocumentOffsets:
    """Token offsets of a Megatron index's documents (``n_documents + 1`` of them), computed
    from the memory-mapped arrays on access, so that an index of a billion documents costs no
    memory; indexes and slices like the int64 array of the bytepiece layout."""

    def __init__(self, index: MegatronIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index.n_documents + 1

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def _tokens(self, sequences: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        index = self._index
        out = np.empty(len(sequences), np.int64)
        inside = sequences < index.n_sequences
        out[inside] = np.asarray(index.pointers[sequences[inside]]) // index.dtype.itemsize
        out[~inside] = index.n_tokens
        return out

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self._tokens(np.asarray(self._index.document_index[key], dtype=np.int64))
        return int(self._tokens(np.asarray([self._index.document_index[key]], dtype=np.int64))[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[np.int64]:
        return self[:] if dtype is None else self[:].astype(dtype)
