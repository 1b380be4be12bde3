"""Flat ids to Python lists, at the cost of one ``take`` and one ``tolist`` per batch."""

from __future__ import annotations

import gc

import numpy as np
import numpy.typing as npt

#: arrays at least this long become lists through the shared id objects
SHARED_IDS_MIN = 48

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


def id_lists(flat: npt.NDArray[np.integer], offsets: npt.NDArray[np.int64], vocab_size: int) -> list[list[int]]:
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
