"""Token ids as NumPy files (``bytepiece encode --format npy``): the writer and the reader.

``ids.npy`` holds every token id of every document, concatenated (``uint16`` when the
vocabulary has at most 65,536 ids, else ``uint32``, as in :mod:`.binfile`);
``ids.offsets.npy`` holds the ``n_documents + 1`` ``int64`` document boundaries: document ``i``
is ``ids[offsets[i]:offsets[i + 1]]``. Both load with plain ``numpy.load``.

:class:`NpyWriter` streams batches straight into the final layout: the ``.npy`` header is
written first with room for any length and rewritten with the real one at the end, so the ids
pass through memory and disk once. The two files are one atomic set, like :class:`.BinWriter`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from ..io import atomic
from ..io.read import map_npy
from ..errors import InputError, ModelFormatError
from ..vocab import token_dtype
from .binfile import check_offsets

OFFSETS_SUFFIX = ".offsets.npy"
_MAGIC = b"\x93NUMPY\x01\x00"
#: digits of the largest length a header must be able to hold (a 2**63 - 1 token corpus)
_MAX_DIGITS = 19


def offsets_path(path: str | os.PathLike) -> Path:
    """``ids.npy`` -> ``ids.offsets.npy`` (the document boundaries beside the ids)."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".npy") + OFFSETS_SUFFIX)


def _header(dtype: np.dtype, length: int, size: int | None = None) -> bytes:
    """A version 1.0 ``.npy`` header for a 1-d array, padded with spaces to ``size`` bytes (by
    default: the size that holds any length, so the final header fits the placeholder's room)."""
    text = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (np.lib.format.dtype_to_descr(dtype), length)
    if size is None:
        widest = len(text) - len(str(length)) + _MAX_DIGITS
        size = -(-(len(_MAGIC) + 2 + widest + 1) // 64) * 64
    pad = size - len(_MAGIC) - 2 - len(text) - 1
    body = (text + " " * pad + "\n").encode("latin1")
    return _MAGIC + len(body).to_bytes(2, "little") + body


class NpyWriter(atomic.StagedWriter):
    """Stream token ids into ``path`` and ``offsets_path(path)``, atomically.

    ``write(ids, offsets)`` takes what ``Tokenizer.encode_batch(..., return_flat=True)`` returns;
    the files appear when the writer closes without an error, and an error (or ``abort()``)
    leaves any previous files untouched.
    """

    def __init__(self, path: str | os.PathLike, *, vocab_size: int, overwrite: bool = True) -> None:
        self.path = Path(path)
        self.offsets_path = offsets_path(self.path)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = int(vocab_size)
        if atomic.is_stream(self.path):
            raise InputError(f"{self.path} is a device or FIFO; --format npy writes two files, give a regular file path")
        self.n_tokens = 0
        self._offsets: list[npt.NDArray[np.int64]] = [np.zeros(1, dtype=np.int64)]
        self._closed = True
        atomic.check_writable([self.path, self.offsets_path], overwrite=overwrite)
        self._out = atomic.OutputSet(overwrite=overwrite)
        self._ids: IO[bytes] = self._out.open(self.path, "wb")
        self._ids.write(_header(self.dtype, 0))
        self._closed = False

    @property
    def n_documents(self) -> int:
        return sum(len(o) for o in self._offsets) - 1

    def write(self, ids: npt.ArrayLike, offsets: npt.ArrayLike) -> None:
        """Append the documents of one batch: flat ``ids`` and their ``n + 1`` ``offsets``."""
        if self._closed:
            raise InputError(f"NpyWriter for {self.path} is already closed")
        ids = np.asarray(ids)
        offsets = np.asarray(offsets, dtype=np.int64)
        if ids.ndim != 1 or offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 or offsets[-1] != len(ids):
            raise InputError("write() takes flat ids and offsets from 0 to len(ids), as encode_batch(..., "
                             "return_flat=True) returns them")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise InputError(f"token ids must be in 0..{self.vocab_size - 1}")
        self._ids.write(ids.astype(self.dtype, copy=False).tobytes())
        self._offsets.append(offsets[1:] + self.n_tokens)
        self.n_tokens += len(ids)

    def _finish(self) -> None:
        """The real header (the token count is known now) and the offsets."""
        self._ids.seek(0)
        self._ids.write(_header(self.dtype, self.n_tokens))
        with self._out.open(self.offsets_path, "wb") as f:
            np.save(f, np.concatenate(self._offsets))


def is_npy(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an existing ``.npy`` token file: NumPy's magic bytes, and a name
    ending in ``.npy`` or an offsets file beside it (``encode --format npy -o ids.bin`` writes
    ``ids.bin`` and ``ids.bin.offsets.npy``). A FIFO or device is never opened here."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        if f.read(len(_MAGIC) - 2) != _MAGIC[:-2]:
            return False
    return path.name.endswith(".npy") or offsets_path(path).is_file()


def open_npy(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, offsets)`` of an ``.npy`` token file and its offsets (read-only memmaps of the
    checked files); every offset is checked (from 0 to the number of ids, never decreasing)."""
    path = Path(path)
    side = offsets_path(path)
    for file in (path, side):
        if not os.path.lexists(file):
            raise ModelFormatError(f"{file} is missing: an .npy token file comes with its {OFFSETS_SUFFIX} "
                                   "(bytepiece encode --format npy writes both)")
    tokens = map_npy(path, what="token file", error=ModelFormatError)
    offsets = map_npy(side, what="token offsets file", error=ModelFormatError)
    if tokens.dtype.kind not in "iu" or offsets.dtype.kind not in "iu":
        raise ModelFormatError(f"{path} and {side.name} must be 1-d integer arrays (ids and document offsets)")
    if not len(offsets) or offsets[0] != 0 or offsets[-1] != len(tokens):
        raise ModelFormatError(f"{side} must run from 0 to the number of ids in {path.name} ({len(tokens)}); "
                               "the files do not belong together")
    check_offsets(offsets, len(tokens), side)
    return tokens, offsets

