"""A growable count table of byte strings: the pieces of the second training pass, and the
distinct chunks of a training task.

Open addressing: ``slots`` hold entry indices (-1: empty); entries keep a 64-bit hash
(``runs.hash_bytes``, the same hash that orders piece runs), the string's offset and length in a
byte ``arena`` and its count. Entries and their bytes are appended in order, so the strings lie
in the arena one after another in the order they were first added. The table grows inside the
kernels, so callers pass the arrays in and keep what comes back.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._jit import njit
from .copying import grown_copy
from .prefetch import prefetch
from .runs import hash_bytes

FIB = np.uint64(0x9E3779B97F4A7C15)


class ByteTable(NamedTuple):
    """The arrays of one table (see the module docstring)."""

    slots: npt.NDArray[np.int32]
    hashes: npt.NDArray[np.uint64]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int32]
    counts: npt.NDArray[np.int64]
    arena: npt.NDArray[np.uint8]
    meta: npt.NDArray[np.int64]  # [entries, arena bytes used, strings added (with repetition)]

    @classmethod
    def new(cls, capacity: int = 1 << 16, arena_bytes: int = 1 << 20) -> ByteTable:
        """A table of ``capacity`` slots and an arena of ``arena_bytes`` (both grow as needed; an
        arena's pages cost memory only once written, so a generous one saves its copies)."""
        return cls(np.full(capacity, -1, np.int32), np.empty(capacity // 2, np.uint64), np.empty(capacity // 2, np.int64),
                   np.empty(capacity // 2, np.int32), np.empty(capacity // 2, np.int64), np.empty(arena_bytes, np.uint8),
                   np.zeros(3, np.int64))

    @property
    def size(self) -> int:
        return int(self.meta[0])


@njit(cache=True, nogil=True, inline="always")
def log2(cap):
    bits = 0
    while (np.int64(1) << bits) < cap:
        bits += 1
    return bits


@njit(cache=True, nogil=True, inline="always")
def slot_shift(slots):
    """The shift that maps a hash to a slot (``(h * FIB) >> shift``)."""
    return np.uint64(64 - log2(slots.shape[0]))


@njit(cache=True, nogil=True)
def _rehash(hashes, n, cap):
    """Slots of a table of ``cap`` (a power of two) slots for entries 0..n-1."""
    shift = np.uint64(64 - log2(cap))
    mask = cap - 1
    out = np.full(cap, -1, np.int32)
    for e in range(n):
        s = np.int64((hashes[e] * FIB) >> shift)
        while out[s] >= 0:
            s = (s + 1) & mask
        out[s] = e
    return out


@njit(cache=True, nogil=True)
def grow(slots, hashes, starts, lengths, counts, arena, meta, entries, room):
    """The table arrays with room for ``entries`` more entries and ``room`` more arena bytes
    (rarely called: growing doubles, so the copies cost O(1) per entry overall)."""
    n = meta[0]
    used = meta[1]
    if 2 * (n + entries) > slots.shape[0]:
        cap = slots.shape[0]
        while 2 * (n + entries) > cap:
            cap *= 2
        slots = _rehash(hashes, n, cap)
    if n + entries > hashes.shape[0]:
        new = max(16, 2 * hashes.shape[0], n + entries)
        hashes = grown_copy(hashes, n, new)
        starts = grown_copy(starts, n, new)
        lengths = grown_copy(lengths, n, new)
        counts = grown_copy(counts, n, new)
    if used + room > arena.shape[0]:
        new = max(2 * arena.shape[0], used + room + 1024)
        arena = grown_copy(arena, used, new)
    return slots, hashes, starts, lengths, counts, arena


@njit(cache=True, nogil=True, inline="always")
def needs_room(slots, hashes, arena, meta, entries, room):
    """Whether ``entries`` more entries and ``room`` more arena bytes need :func:`grow` first."""
    return (2 * (meta[0] + entries) > slots.shape[0] or meta[0] + entries > hashes.shape[0]
            or meta[1] + room > arena.shape[0])


@njit(cache=True, nogil=True, inline="always")
def add(buf, a, b, h, weight, slots, shift, mask, hashes, starts, lengths, counts, arena, meta):
    """Add ``weight`` to the count of ``buf[a:b]``, whose ``hash_bytes`` is ``h``. The caller
    guarantees room for one more entry and ``b - a`` more arena bytes (see :func:`grow`), so
    nothing is reallocated here."""
    s = np.int64((h * FIB) >> shift)
    length = b - a
    while True:
        e = slots[s]
        if e < 0:
            break
        if hashes[e] == h and lengths[e] == length:
            st = starts[e]
            same = True
            for i in range(length):
                if arena[st + i] != buf[a + i]:
                    same = False
                    break
            if same:
                counts[e] += weight
                return
        s = (s + 1) & mask
    n = meta[0]
    used = meta[1]
    for i in range(length):
        arena[used + i] = buf[a + i]
    slots[s] = n
    hashes[n] = h
    starts[n] = used
    lengths[n] = length
    counts[n] = weight
    meta[0] = n + 1
    meta[1] = used + length


@njit(cache=True, nogil=True, inline="always")
def prefetch_slot(h, shift, slots):
    prefetch(slots, np.int64((h * FIB) >> shift))


@njit(cache=True, nogil=True, inline="always")
def prefetch_entry(h, shift, slots, hashes, starts, lengths):
    e = slots[np.int64((h * FIB) >> shift)]
    if e >= 0:
        prefetch(hashes, e)
        prefetch(starts, e)
        prefetch(lengths, e)


@njit(cache=True, nogil=True)
def add_chunks(buf, bounds, lo, hi, slots, hashes, starts, lengths, counts, arena, meta):
    """Count chunks ``lo..hi-1`` (``buf[bounds[c]:bounds[c + 1]]``) in the table, once each;
    returns the table arrays (grown when needed)."""
    shift = slot_shift(slots)
    mask = slots.shape[0] - 1
    for c in range(lo, hi):
        a, b = bounds[c], bounds[c + 1]
        if needs_room(slots, hashes, arena, meta, 1, b - a):
            slots, hashes, starts, lengths, counts, arena = grow(slots, hashes, starts, lengths, counts, arena, meta,
                                                                 np.int64(1), b - a)
            shift = slot_shift(slots)
            mask = slots.shape[0] - 1
        add(buf, a, b, hash_bytes(buf, a, b), 1, slots, shift, mask, hashes, starts, lengths, counts, arena, meta)
    meta[2] += hi - lo
    return slots, hashes, starts, lengths, counts, arena
