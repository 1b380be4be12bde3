"""JSON Lines blocks through the kernel of :mod:`bytepiece.kernels.jsonl`, and the Python way for
the lines it leaves (errors, invalid UTF-8, unusual JSON) and for values that may need NFC."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .utf8 import utf8_document

PythonLine = Callable[[bytes, int], tuple[bytes, int]]  # (raw line, line number) -> (UTF-8, invalid count)
_SURROGATE = re.compile("[\ud800-\udfff]")


def field_key(field: str) -> npt.NDArray[np.uint8] | None:
    """The field name as UTF-8 for the kernel, or None (a name with a lone surrogate, which no
    record can spell: the Python path then reports the missing field)."""
    try:
        return np.frombuffer(field.encode("utf-8"), np.uint8).copy()
    except UnicodeEncodeError:
        return None


def kernel_documents(data: bytes, key: npt.NDArray[np.uint8], *, normalize: bool, python_line: PythonLine,
                     lines_before: int) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64], int, int]:
    """(documents' UTF-8, ``n + 1`` offsets, each document's line start in ``data``, invalid
    UTF-8 sequences replaced, lines in ``data``) for a block of whole lines; no Python object
    per record unless a line needs the Python way (``python_line``)."""
    from ..kernels.jsonl import OK, PYTHON, jsonl_field_values

    status, line_starts, bounds, ascii_flags, out = jsonl_field_values(np.frombuffer(data, np.uint8), key)
    keep = status != 0
    redo = np.flatnonzero((status == PYTHON) | ((status == OK) & ~ascii_flags & normalize))
    # Only the documents the Python way changes are spliced in (usually none: a non-ASCII value
    # is most often NFC already), so a block costs one copy, not one per document.
    buffer = out.tobytes()
    kept = np.flatnonzero(keep)
    sizes = np.diff(bounds)[keep]
    pieces: list[bytes] = []
    done = 0  # bytes of buffer already in pieces
    invalid = 0
    lines = None
    for j in redo.tolist():
        a, b = int(bounds[j]), int(bounds[j + 1])
        if status[j] == OK:  # valid UTF-8 that may not be NFC
            value = buffer[a:b]
            doc = utf8_document(value, "strict", "")[0]
            if doc is value:
                continue
        else:  # the kernel wrote nothing for the line (a == b)
            if lines is None:
                lines = data.split(b"\n")
            doc, bad = python_line(lines[j], lines_before + j + 1)
            invalid += bad
        pieces += (buffer[done:a], doc)
        done = b
        sizes[np.searchsorted(kept, j)] = len(doc)
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if pieces:
        buffer = b"".join([*pieces, buffer[done:]])
    return buffer, offsets, line_starts[keep], invalid, len(status)


def json_field(line: str, field: str, where: str) -> str:
    """The string in ``field`` of the JSON object on ``line``; ``where`` (file and line) names
    it in the error for anything else."""
    try:
        obj = json.loads(line)
    except RecursionError:
        raise InputError(f"{where} is nested too deeply to be a JSON Lines record") from None
    except ValueError as e:
        raise InputError(f"{where} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where} is a JSON {type(obj).__name__}, expected an object with field {field!r}")
    if field not in obj:
        names = ", ".join(map(str, list(obj)[:8])) or "none"
        raise InputError(f"{where} has no field {field!r} (fields: {names}); pick the right field with jsonl_field "
                         "(CLI: --jsonl-field) or fix the line")
    value = obj[field]
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} holds a {type(value).__name__}, expected a string")
    return value


def replace_surrogates(value: str, errors: str, where: str) -> tuple[str, int]:
    """(``value`` with each lone surrogate escape (``"\\ud800"``) replaced by U+FFFD, how many):
    such a code point is no character and has no UTF-8 encoding, so it is invalid text like
    invalid UTF-8 (counted with it), or with ``errors="strict"`` an error naming ``where``."""
    lone = _SURROGATE.search(value)
    if lone is None:
        return value, 0
    if errors == "strict":
        raise InputError(f"{where} holds the lone surrogate escape {ascii(lone.group())[1:-1]}, which is no "
                         "character; fix the record, or have it replaced by U+FFFD: errors='replace' (CLI: leave out "
                         "--strict-utf8)")
    return _SURROGATE.subn("\ufffd", value)
