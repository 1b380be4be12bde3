"""JSON grammar for the JSON Lines kernel: validating scanners that return where a value ends.

Each scanner accepts exactly what Python's ``json`` module accepts in its strict mode, except
what the caller must leave to Python anyway: ``NaN``/``Infinity`` literals, lone surrogate
escapes, invalid UTF-8, and nesting deeper than ``MAX_DEPTH`` are rejected (-1), never misread.
Containers are followed with an explicit stack, never recursion.
"""

from __future__ import annotations

from ._jit import njit

MAX_DEPTH = 256
_OBJ, _ARR = 1, 2


@njit(cache=True, nogil=True, inline="always")
def _is_ws(c):
    return c == 32 or c == 9 or c == 13 or c == 10


@njit(cache=True, nogil=True, inline="always")
def _skip_ws(d, i, end):
    while i < end and _is_ws(d[i]):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _hex(c):
    c = int(c)  # not uint8 arithmetic (which wraps) when the kernels run as plain Python
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, nogil=True)
def hex4(d, i, end):
    """Value of the 4 hex digits at d[i:i+4], or -1."""
    if i + 4 > end:
        return -1
    v = 0
    for k in range(4):
        h = _hex(d[i + k])
        if h < 0:
            return -1
        v = v * 16 + h
    return v


@njit(cache=True, nogil=True)
def utf8_length(d, i, end):
    """Length of the valid UTF-8 sequence starting with a non-ASCII byte at d[i], or 0
    (the same sequences Python's strict UTF-8 decoder accepts)."""
    c = d[i]
    if 0xC2 <= c <= 0xDF:
        n, lo, hi = 2, 0x80, 0xBF
    elif c == 0xE0:
        n, lo, hi = 3, 0xA0, 0xBF
    elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
        n, lo, hi = 3, 0x80, 0xBF
    elif c == 0xED:
        n, lo, hi = 3, 0x80, 0x9F
    elif c == 0xF0:
        n, lo, hi = 4, 0x90, 0xBF
    elif 0xF1 <= c <= 0xF3:
        n, lo, hi = 4, 0x80, 0xBF
    elif c == 0xF4:
        n, lo, hi = 4, 0x80, 0x8F
    else:
        return 0
    if i + n > end or not (lo <= d[i + 1] <= hi):
        return 0
    for k in range(2, n):
        if not (0x80 <= d[i + k] <= 0xBF):
            return 0
    return n


@njit(cache=True, nogil=True)
def scan_string(d, i, end):  # noqa: C901 - a JSON string validator: one state machine over bytes
    """d[i] is an opening quote: (index after the closing quote or -1, has escapes, all ASCII)."""
    i += 1
    escaped = False
    ascii_only = True
    while i < end:
        c = d[i]
        if c == 34:  # "
            return i + 1, escaped, ascii_only
        if c == 92:  # backslash
            escaped = True
            if i + 1 >= end:
                return -1, escaped, ascii_only
            e = d[i + 1]
            if e == 117:  # u
                v = hex4(d, i + 2, end)
                if v < 0:
                    return -1, escaped, ascii_only
                if v >= 0x80:
                    ascii_only = False
                if 0xD800 <= v <= 0xDBFF:  # a high surrogate must be followed by a low one
                    if i + 7 < end and d[i + 6] == 92 and d[i + 7] == 117:
                        w = hex4(d, i + 8, end)
                        if 0xDC00 <= w <= 0xDFFF:
                            i += 12
                            continue
                    return -1, escaped, ascii_only
                if 0xDC00 <= v <= 0xDFFF:
                    return -1, escaped, ascii_only
                i += 6
            elif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                i += 2
            else:
                return -1, escaped, ascii_only
        elif c < 32:
            return -1, escaped, ascii_only
        elif c < 128:
            i += 1
        else:
            n = utf8_length(d, i, end)
            if n == 0:
                return -1, escaped, ascii_only
            ascii_only = False
            i += n
    return -1, escaped, ascii_only


@njit(cache=True, nogil=True)
def _skip_digits(d, i, end):
    while i < end and 48 <= d[i] <= 57:
        i += 1
    return i


@njit(cache=True, nogil=True)
def _scan_number(d, i, end):
    """A JSON number at d[i] (``-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?``): its end, or -1."""
    if i < end and d[i] == 45:
        i += 1
    if i >= end:
        return -1
    if d[i] == 48:
        i += 1
    elif 49 <= d[i] <= 57:
        i = _skip_digits(d, i, end)
    else:
        return -1
    if i < end and d[i] == 46:
        start = i + 1
        i = _skip_digits(d, start, end)
        if i == start:
            return -1
    if i < end and (d[i] == 101 or d[i] == 69):
        i += 1
        if i < end and (d[i] == 43 or d[i] == 45):
            i += 1
        start = i
        i = _skip_digits(d, start, end)
        if i == start:
            return -1
    return i


@njit(cache=True, nogil=True)
def _scan_literal(d, i, end):
    c = d[i]
    if c == 116 and i + 4 <= end and d[i + 1] == 114 and d[i + 2] == 117 and d[i + 3] == 101:
        return i + 4
    if c == 102 and i + 5 <= end and d[i + 1] == 97 and d[i + 2] == 108 and d[i + 3] == 115 and d[i + 4] == 101:
        return i + 5
    if c == 110 and i + 4 <= end and d[i + 1] == 117 and d[i + 2] == 108 and d[i + 3] == 108:
        return i + 4
    return -1


@njit(cache=True, nogil=True)
def _scan_key(d, i, end):
    """A member name and its colon at d[i]: index after the colon (and whitespace), or -1."""
    if i >= end or d[i] != 34:
        return -1
    j, _, _ = scan_string(d, i, end)
    if j < 0:
        return -1
    j = _skip_ws(d, j, end)
    if j >= end or d[j] != 58:  # :
        return -1
    return _skip_ws(d, j + 1, end)


@njit(cache=True, nogil=True)
def scan_value(d, i, end, stack):  # noqa: C901 - a JSON value validator: one state machine over bytes
    """Any JSON value at d[i] (no leading whitespace): its end, or -1. Containers are followed
    with an explicit stack, never recursion."""
    depth = 0
    while True:
        if i >= end:
            return -1
        c = d[i]
        if c == 123 or c == 91:  # { [
            j = _skip_ws(d, i + 1, end)
            if j < end and d[j] == (125 if c == 123 else 93):
                i = j + 1
            else:
                if depth >= stack.shape[0]:
                    return -1
                stack[depth] = _OBJ if c == 123 else _ARR
                depth += 1
                i = _scan_key(d, j, end) if c == 123 else j
                if i < 0:
                    return -1
                continue
        elif c == 34:
            i, _, _ = scan_string(d, i, end)
        elif c == 45 or 48 <= c <= 57:
            i = _scan_number(d, i, end)
        else:
            i = _scan_literal(d, i, end)
        if i < 0:
            return -1
        # after a complete value: close containers or move to the next member / element
        while True:
            if depth == 0:
                return i
            i = _skip_ws(d, i, end)
            if i >= end:
                return -1
            c = d[i]
            top = stack[depth - 1]
            if c == 44:  # ,
                i = _skip_ws(d, i + 1, end)
                if top == _OBJ:
                    i = _scan_key(d, i, end)
                    if i < 0:
                        return -1
                break
            if (c == 125 and top == _OBJ) or (c == 93 and top == _ARR):
                depth -= 1
                i += 1
                continue
            return -1
