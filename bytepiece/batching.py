"""Between Python batches and flat arrays: joining texts into one UTF-8 buffer, and turning
flat ids back into lists."""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .normalize import NFC, to_utf8
from .options import bad_batch_item

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
    ``tolist`` for the whole batch, then list slices (no numpy call per document)."""
    ids = shared_ids(vocab_size).take(flat).tolist()
    bounds = offsets.tolist()
    return [ids[i:j] for i, j in zip(bounds, bounds[1:])]


def join_texts(texts: list, normalization: str, first_index: int = 0) -> tuple[bytes, npt.NDArray[np.int64]]:
    """The normalized UTF-8 of all texts, concatenated, and the byte offsets of each.

    Batches of ``str`` (or of ``bytes``) are joined first and checked once: ASCII needs no
    normalization, and text that is NFC as a whole is NFC in every part (NFC is a local
    property), so the per-text work is one ``encode`` at most. Anything else takes the
    careful per-text path, which also names a bad item (``texts`` being items ``first_index``
    on of the caller's batch)."""
    n = len(texts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n == 0:
        return b"", offsets
    first = texts[0]
    joined: Any = None
    if isinstance(first, str):
        try:
            joined = "".join(texts)
        except TypeError:
            pass
        if joined is not None:
            if joined.isascii():
                np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=n), out=offsets[1:])
                return joined.encode("ascii"), offsets
            if normalization != NFC or unicodedata.is_normalized("NFC", joined):
                try:
                    datas = [t.encode("utf-8") for t in texts]
                except UnicodeEncodeError:
                    datas = None
                if datas is not None:
                    np.cumsum(np.fromiter(map(len, datas), dtype=np.int64, count=n), out=offsets[1:])
                    return b"".join(datas), offsets
    elif isinstance(first, bytes):
        try:
            joined = b"".join(texts)
        except TypeError:
            pass
        if joined is not None:
            try:
                np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=n), out=offsets[1:])
            except TypeError:
                joined = None
        if joined is not None and offsets[-1] == len(joined):
            if normalization != NFC or joined.isascii():
                return joined, offsets
            try:
                if unicodedata.is_normalized("NFC", joined.decode("utf-8")):
                    return joined, offsets
            except UnicodeDecodeError:
                pass
    return _join_each(texts, offsets, normalization, first_index)


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
