"""Between Python batches and flat arrays: joining texts into one UTF-8 buffer, and turning
flat ids back into lists."""

from __future__ import annotations

import gc
import unicodedata
from typing import Any
import numpy as np
import numpy.typing as npt

from .errors import InputError
from .normalize import NFC, to_utf8
from .options import bad_batch_item

_nfc = unicodedata.normalize
_is_nfc = unicodedata.is_normalized

_id_objects: npt.NDArray[np.object_] = np.empty(0, dtype=object)


def shared_ids(n: int) -> npt.NDArray[np.object_]:
    """An object array whose item i is the int i, shared by all tokenizers.

    Lists made by ``take(ids).tolist()`` hold references to these ints instead of a fresh int
    object per token (ids above 256 are not cached by CPython), which halves the cost of list
    output and of freeing it."""
    global _id_objects
    table = _id_objects
    if table.shape[0] < n:
        table = np.array(range(n), dtype=object)
        _id_objects = table
    return table


def id_lists(flat: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64], vocab_size: int) -> list[list[int]]:
    """``[flat[offsets[i]:offsets[i + 1]] for each i]`` as lists of ints: one ``take`` and one
    ``tolist`` for the whole batch, then list slices (no numpy call per document).

    The cyclic garbage collector is paused meanwhile: every 700 new lists it would otherwise
    scan the young objects, and with 30k short documents per MB (code) that doubled the cost.
    Lists of ints cannot form cycles, so nothing is missed."""
    ids = shared_ids(vocab_size).take(flat).tolist()
    bounds = offsets.tolist()
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return [ids[i:j] for i, j in zip(bounds, bounds[1:])]
    finally:
        if paused:
            gc.enable()


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
