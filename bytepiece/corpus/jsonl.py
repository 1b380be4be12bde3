"""JSON Lines blocks through the kernel of :mod:`bytepiece.kernels.jsonl`, and the Python way for
the lines it leaves (errors, invalid UTF-8, unusual JSON) and for values that may need NFC."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .utf8 import nfc_utf8

PythonLine = Callable[[bytes, int], tuple[bytes, int]]  # (raw line, line number) -> (UTF-8, invalid count)


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
    invalid = 0
    if not len(redo):
        sizes = np.diff(bounds)[keep]
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return out.tobytes(), offsets, line_starts[keep], 0, len(status)
    buffer = out.tobytes()
    docs: list[bytes] = []
    redo_set = set(redo.tolist())
    lines = None
    for j in np.flatnonzero(keep).tolist():
        a, b = int(bounds[j]), int(bounds[j + 1])
        if j not in redo_set:
            docs.append(buffer[a:b])
        elif status[j] == OK:  # valid UTF-8 that may not be NFC
            docs.append(nfc_utf8(buffer[a:b].decode("utf-8"), buffer[a:b]))
        else:
            if lines is None:
                lines = data.split(b"\n")
            doc, bad = python_line(lines[j], lines_before + j + 1)
            invalid += bad
            docs.append(doc)
    offsets = np.zeros(len(docs) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, docs), np.int64, len(docs)), out=offsets[1:])
    return b"".join(docs), offsets, line_starts[keep], invalid, len(status)
