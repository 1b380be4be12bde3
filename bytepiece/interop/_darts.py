"""A minimal builder of sentencepiece ``precompiled_charsmap`` blobs.

sentencepiece stores normalization rules as ``<uint32 trie size><darts-clone double array>
<NUL-terminated replacement strings>``; at each input position the normalizer takes the longest
key of the double array that prefixes the input and emits the replacement string its value
points to (input that matches no key passes through one UTF-8 character at a time).

darts-clone unit layout (uint32): bits 0-7 label, bit 8 "has leaf", bits 10-31 offset (bit 9
would scale it by 256; not needed for the small tables built here); a leaf unit holds its value
in bits 0-30 with bit 31 set. Lookup: ``pos = 0; pos ^= offset(unit[pos])``; for each key byte
``c``: ``pos ^= c``, the unit there must have label ``c``, ``pos ^= offset``; if it has a leaf,
``unit[pos]`` holds the value of the key read so far. Unused units are filled with bit 31 set so
that no label ever matches them.
"""

from __future__ import annotations

import struct

from ..errors import InputError

_LEAF = 1 << 31
_MAX_OFFSET = 1 << 21


def build_double_array(keys: dict[bytes, int]) -> list[int]:
    """darts-clone units for ``keys`` (non-empty byte strings without NUL) -> values < 2**31."""
    # Plain trie first: node -> {byte: child}, terminal value per node.
    children: list[dict[int, int]] = [{}]
    values: list[int | None] = [None]
    for key, value in keys.items():
        if not key or 0 in key:
            raise InputError(f"charsmap keys must be non-empty and free of NUL bytes, got {key!r}")
        node = 0
        for c in key:
            nxt = children[node].get(c)
            if nxt is None:
                nxt = len(children)
                children[node][c] = nxt
                children.append({})
                values.append(None)
            node = nxt
        values[node] = value

    units: dict[int, int] = {}
    used: set[int] = {0}
    used_bases: set[int] = set()
    position = {0: 0}
    queue = [0]
    next_base = 1
    while queue:
        node = queue.pop(0)
        labels = sorted(children[node])
        if values[node] is not None:
            labels = [0] + labels
        if not labels:
            continue
        base = next_base
        while base in used_bases or any((base ^ label) in used for label in labels):
            base += 1
        used_bases.add(base)
        pos = position[node]
        offset = pos ^ base
        if offset >= _MAX_OFFSET:  # pragma: no cover - only for huge tables
            raise InputError("charsmap too large for this builder")
        has_leaf = 1 if values[node] is not None else 0
        label = units.get(pos, 0) & 0xFF
        units[pos] = (offset << 10) | (has_leaf << 8) | label
        for label in labels:
            used.add(base ^ label)
        leaf = values[node]
        if leaf is not None:
            units[base] = _LEAF | leaf
        for c in sorted(children[node]):
            child = children[node][c]
            position[child] = base ^ c
            units[base ^ c] = c  # offset/leaf bits filled in when the child is processed
            queue.append(child)
        while next_base in used_bases:
            next_base += 1
    size = max(units) + 1
    # Round up to a multiple of 256 so that every ``pos ^ c`` of a lookup stays inside.
    size = (size + 255) // 256 * 256 + 256
    array = [_LEAF] * size
    for pos, unit in units.items():
        array[pos] = unit
    return array


def lookup(array: list[int], key: bytes) -> list[tuple[int, int]]:
    """(value, length) of every key that prefixes ``key`` (darts-clone commonPrefixSearch);
    used by the tests to check the builder."""
    out = []
    pos = 0
    pos ^= _offset(array[0])
    for i, c in enumerate(key):
        pos ^= c
        if pos >= len(array):
            break
        unit = array[pos]
        if (unit & (_LEAF | 0xFF)) != c:
            break
        pos ^= _offset(unit)
        if (unit >> 8) & 1:
            out.append((array[pos] & (_LEAF - 1), i + 1))
    return out


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def build_charsmap(rules: dict[bytes, bytes]) -> bytes:
    """A ``precompiled_charsmap`` blob replacing each key (a byte prefix) by its value."""
    blob = bytearray()
    keys: dict[bytes, int] = {}
    for key, replacement in rules.items():
        if 0 in replacement:
            raise InputError(f"charsmap replacements cannot contain NUL, got {replacement!r}")
        keys[key] = len(blob)
        blob += replacement + b"\0"
    array = build_double_array(keys)
    trie = struct.pack(f"<{len(array)}I", *array)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
