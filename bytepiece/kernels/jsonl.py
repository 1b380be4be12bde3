"""JSON Lines: the string field of every record, extracted and unescaped without Python objects.

``json.loads`` per line builds a dict and a str for every record, which costs as much as a
fifth of encoding the text (measured on source-code JSONL: 3.8 ms of reading per MB against
16.5 ms of encoding). This kernel validates each line as JSON, finds the *last* top-level
occurrence of the key (what ``json.loads`` keeps for duplicate keys) and, when its value is a
string, writes the unescaped UTF-8 into an output buffer. Anything it does not handle exactly
as ``json.loads`` would (invalid UTF-8, NaN/Infinity, lone surrogate escapes,
nesting deeper than ``MAX_DEPTH``, a missing field, a value that is not a string, or a line that
is not valid JSON) is left to the Python path, which also writes the error messages: a line the
kernel accepts is one ``json.loads`` accepts with the same result.
"""

from __future__ import annotations

import numpy as np
from ._jit import njit

from .jsonscan import MAX_DEPTH, hex4, scan_string, scan_value, utf8_length

BLANK, OK, PYTHON = 0, 1, 2


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Byte-indexed tables that replace chains of comparisons in the string loop (measured 1.5x
    faster on source-code JSONL, where an escape comes every 13 bytes): ``plain[c]`` is 1 for
    a byte copied as it is (printable ASCII but the quote and the backslash), ``unescape[e]`` the
    byte the escape backslash-``e`` stands for (0: none; backslash-u is decoded apart)."""
    plain = np.zeros(256, np.uint8)
    plain[32:128] = 1
    plain[[34, 92]] = 0
    unescape = np.zeros(256, np.uint8)
    for escape, byte in ((b"n", 10), (b"t", 9), (b'"', 34), (b"\\", 92), (b"/", 47), (b"r", 13), (b"b", 8), (b"f", 12)):
        unescape[escape[0]] = byte
    return plain, unescape


_PLAIN, _UNESCAPE = _tables()  # global arrays: numba compiles them in as constants


@njit(cache=True, nogil=True, inline="always")
def _put_code_point(out, o, v):
    if v < 0x80:
        out[o] = v
        return o + 1
    if v < 0x800:
        out[o] = 0xC0 | (v >> 6)
        out[o + 1] = 0x80 | (v & 0x3F)
        return o + 2
    if v < 0x10000:
        out[o] = 0xE0 | (v >> 12)
        out[o + 1] = 0x80 | ((v >> 6) & 0x3F)
        out[o + 2] = 0x80 | (v & 0x3F)
        return o + 3
    out[o] = 0xF0 | (v >> 18)
    out[o + 1] = 0x80 | ((v >> 12) & 0x3F)
    out[o + 2] = 0x80 | ((v >> 6) & 0x3F)
    out[o + 3] = 0x80 | (v & 0x3F)
    return o + 4


@njit(cache=True, nogil=True)
def _copy_string(d, i, n, out, o):  # noqa: C901 - a JSON string decoder: one state machine over bytes
    """d[i] is an opening quote: copy the string's content, unescaped, to out[o:]. Returns
    (index after the closing quote or -1, new end in ``out``, all ASCII). Rejects what the
    Python path must handle (see the module docstring)."""
    i += 1
    ascii_only = True
    plain = _PLAIN
    unescape = _UNESCAPE
    while i < n:
        c = d[i]
        if plain[c]:
            out[o] = c
            o += 1
            i += 1
        elif c == 34:
            return i + 1, o, ascii_only
        elif c == 92:
            if i + 1 >= n:
                return -1, o, ascii_only
            e = d[i + 1]
            u = unescape[e]
            if u != 0:
                out[o] = u
                o += 1
                i += 2
            else:
                if e != 117:  # u
                    return -1, o, ascii_only
                v = hex4(d, i + 2, n)
                if v < 0 or 0xDC00 <= v <= 0xDFFF:
                    return -1, o, ascii_only
                i += 6
                if 0xD800 <= v <= 0xDBFF:  # a high surrogate must be followed by a low one
                    if not (i + 1 < n and d[i] == 92 and d[i + 1] == 117):
                        return -1, o, ascii_only
                    w = hex4(d, i + 2, n)
                    if not 0xDC00 <= w <= 0xDFFF:
                        return -1, o, ascii_only
                    v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00)
                    i += 6
                if v >= 0x80:
                    ascii_only = False
                o = _put_code_point(out, o, v)
        elif c < 32:
            return -1, o, ascii_only
        else:
            k = utf8_length(d, i, n)
            if k == 0:
                return -1, o, ascii_only
            for t in range(k):
                out[o + t] = d[i + t]
            o += k
            i += k
            ascii_only = False
    return -1, o, ascii_only


@njit(cache=True, nogil=True, inline="always")
def _equal(a, start, end, key):
    if end - start != key.shape[0]:
        return False
    for k in range(key.shape[0]):
        if a[start + k] != key[k]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _line_end(d, i, n):
    while i < n and d[i] != 10:
        i += 1
    return i


@njit(cache=True, nogil=True)
def _record(d, a, n, key, stack, out, o):  # noqa: C901 - a JSON record scanner: one state machine over bytes
    """Parse the line starting at d[a] (it ends at the next \\n or at n). Returns (status,
    line end, new end in ``out``, ASCII): for OK lines the field's value was written at out[o:]."""
    i = a
    while i < n and (d[i] == 32 or (9 <= d[i] <= 13 and d[i] != 10)):  # what bytes.strip() removes
        i += 1
    if i >= n or d[i] == 10:
        return BLANK, i, o, True
    i = a
    while i < n and (d[i] == 32 or d[i] == 9 or d[i] == 13):  # JSON whitespace within a line
        i += 1
    if i >= n or d[i] != 123:
        return PYTHON, _line_end(d, i, n), o, True
    i = _skip_line_ws(d, i + 1, n)
    found = 0  # 0: key not seen, 1: last value a string (written at out[o:v_end]), 2: not a string
    v_end = o
    v_ascii = True
    if i < n and d[i] == 125:
        i += 1
    else:
        while True:
            if i >= n or d[i] != 34:
                return PYTHON, _line_end(d, i, n), o, True
            k_end, k_esc, _ = scan_string(d, i, n)
            if k_end < 0:
                return PYTHON, _line_end(d, i, n), o, True
            if k_esc:  # compare the unescaped name, written after anything kept so far
                scratch = v_end if found == 1 else o
                _, s_end, _ = _copy_string(d, i, n, out, scratch)
                match = _equal(out, scratch, s_end, key)
            else:
                match = _equal(d, i + 1, k_end - 1, key)
            i = _skip_line_ws(d, k_end, n)
            if i >= n or d[i] != 58:
                return PYTHON, _line_end(d, i, n), o, True
            i = _skip_line_ws(d, i + 1, n)
            if match and i < n and d[i] == 34:
                j, v_end, v_ascii = _copy_string(d, i, n, out, o)
                found = 1
            elif i < n and d[i] == 34:
                j, _, _ = scan_string(d, i, n)
            else:
                j = scan_value(d, i, _line_end(d, i, n), stack)
                if match:
                    found = 2
            if j < 0:
                return PYTHON, _line_end(d, i, n), o, True
            i = _skip_line_ws(d, j, n)
            if i < n and d[i] == 44:
                i = _skip_line_ws(d, i + 1, n)
                continue
            if i < n and d[i] == 125:
                i += 1
                break
            return PYTHON, _line_end(d, i, n), o, True
    i = _skip_line_ws(d, i, n)
    if (i < n and d[i] != 10) or found != 1:
        return PYTHON, _line_end(d, i, n), o, True
    return OK, i, v_end, v_ascii


@njit(cache=True, nogil=True, inline="always")
def _skip_line_ws(d, i, n):
    while i < n and (d[i] == 32 or d[i] == 9 or d[i] == 13):
        i += 1
    return i


@njit(cache=True, nogil=True)
def jsonl_field_values(d, key):
    """For every line of ``d`` (split at ``\\n``; a final ``\\n`` ends the last line): its status
    (BLANK, OK or PYTHON), its start, and for OK lines the field's UTF-8 in ``out`` at
    ``bounds[j]:bounds[j + 1]`` (empty for other lines) with ``ascii[j]`` telling whether it is
    pure ASCII. Returns (status, line_starts, bounds, ascii, out)."""
    n = d.shape[0]
    lines = 0
    for i in range(n):
        lines += d[i] == 10
    if n and d[n - 1] != 10:
        lines += 1
    status = np.zeros(lines, np.uint8)
    starts = np.zeros(lines, np.int64)
    bounds = np.zeros(lines + 1, np.int64)
    ascii_flags = np.ones(lines, np.bool_)
    out = np.empty(n, np.uint8)
    stack = np.empty(MAX_DEPTH, np.uint8)
    o = np.int64(0)  # int64, not the constant 0: one compiled _record (and _copy_string), not two
    a = np.int64(0)
    for j in range(lines):
        starts[j] = a
        st, b, o_new, asc = _record(d, a, n, key, stack, out, o)
        status[j] = st
        if st == OK:
            o = o_new
            ascii_flags[j] = asc
        bounds[j + 1] = o
        a = b + 1
    return status, starts, bounds, ascii_flags, out[:o]
