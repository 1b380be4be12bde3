"""Token ids as text: a line per document, of ids (``--format ids``) or of pieces
(``--format pieces``), written to a file (atomically) or to standard output as they come; and
lines of ids read back.

A document of millions of tokens is written a slice at a time, so writing costs a small,
fixed amount of memory per document rather than dozens of bytes per token.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError
from ..io import atomic
from ..units import format_size

#: tokens turned into text at a time
_SLICE = 1 << 16
#: the longest line of ids read back (a line is one document)
MAX_ID_LINE_BYTES = 256 << 20


class TextWriter:
    """Documents as lines of ids (or of pieces, with ``render``, which spells a piece), to
    ``path`` (an atomic file) or, with ``path=None``, to standard output, flushed after each
    batch so that a pipeline sees every document as soon as it is encoded."""

    def __init__(self, path: str | os.PathLike | None, *, render: list[str] | None = None,
                 overwrite: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self.render = render
        self.n_tokens = 0
        self.n_documents = 0
        self._out: atomic.OutputSet | None = None
        if self.path is None:
            self._file: IO[str] = sys.stdout
        else:
            self._out = atomic.OutputSet(overwrite=overwrite)
            self._file = self._out.open(self.path, "w")

    def write(self, ids: npt.NDArray[np.integer], offsets: npt.NDArray[np.int64]) -> None:
        out = self._file
        bounds = offsets.tolist()
        render = self.render
        lines: list[str] = []
        for a, b in zip(bounds, bounds[1:]):
            if b - a > _SLICE:  # a long document: a slice at a time, never one huge string
                if lines:
                    out.write("".join(lines))
                    lines = []
                for lo in range(a, b, _SLICE):
                    out.write((" " if lo > a else "") + self._text(ids[lo:min(b, lo + _SLICE)], render))
                out.write("\n")
            else:
                lines.append(self._text(ids[a:b], render) + "\n")
        if lines:
            out.write("".join(lines))
        out.flush()
        self.n_tokens += len(ids)
        self.n_documents += len(bounds) - 1

    @staticmethod
    def _text(ids: npt.NDArray[np.integer], render: list[str] | None) -> str:
        if render is None:
            return " ".join(map(str, ids.tolist()))
        return " ".join([render[i] for i in ids.tolist()])

    def close(self) -> Path | None:
        if self._out is not None:
            self._out.commit()
            self._out = None
        return self.path

    def abort(self) -> None:
        if self._out is not None:
            self._out.abort()
            self._out = None

    def __enter__(self) -> TextWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class LineSource(Protocol):
    """What :func:`read_id_lines` reads: a binary stream, or anything with its ``readline``."""

    def readline(self, limit: int = -1, /) -> bytes: ...


def read_id_lines(stream: LineSource, name: str) -> Iterator[tuple[str, npt.NDArray[np.int64]]]:
    """``(where, ids)`` of each line of ids (decimal, separated by spaces), in order; a line
    longer than :data:`MAX_ID_LINE_BYTES` or a token that is not a plain decimal number is a
    ``ModelFormatError`` naming the line."""
    number = 0
    while True:
        line = stream.readline(MAX_ID_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_ID_LINE_BYTES:
            raise ModelFormatError(f"line {number} of {name} is longer than {format_size(MAX_ID_LINE_BYTES)}; is it a "
                                   "file of token ids?")
        tokens = line.split()
        # ASCII digits only: int() would also take "1_0", "+5", "-3" and other scripts' digits.
        bad = next((tok for tok in tokens if not tok.isdigit()), None)
        if bad is not None:
            shown = bad[:40].decode("utf-8", "backslashreplace")
            raise ModelFormatError(f"line {number} of {name}: {shown!r} is not a token id (ids are non-negative "
                                   "decimal integers separated by spaces)")
        try:
            ids = np.array([int(tok) for tok in tokens], dtype=np.int64)
        except OverflowError:
            raise ModelFormatError(f"line {number} of {name}: a token id is larger than any vocabulary") from None
        yield f"line {number} of {name}", ids

