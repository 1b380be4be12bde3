"""Inputs read once, as they arrive: standard input and pipes given to a run that reads its
corpus only once (``bytepiece encode``, ``encode_corpus`` to a stream).

Nothing is copied anywhere: the first block is read to decide the input's compression and
format, kept, and handed back ahead of the rest when the corpus reader opens the input. Reads
return what has arrived (``read1``), so a document is encoded and written as soon as its line
is complete, memory stays that of one batch, and a ``| head`` downstream ends the run at once.
A run that reads its corpus several times (training) copies such an input to a file instead
(:func:`bytepiece.corpus.sources.spool_stream`).
"""

from __future__ import annotations

import io
import threading
from typing import IO, Any

#: bytes read to recognise an input's compression and format
SNIFF_BYTES = 1 << 16

_lock = threading.Lock()
_opened: dict[str, OnceStream] = {}


class OnceStream(io.RawIOBase):
    """A stream that can be read once, with its first bytes already read (``head``): reads give
    the head first, then the rest; ``tell`` counts the bytes given out (progress)."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.stream = stream
        self.name = name
        self.head = _read_some(stream, SNIFF_BYTES)
        self._given = 0
        self.opened = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._given < len(self.head):
            n = min(len(view), len(self.head) - self._given)
            view[:n] = self.head[self._given:self._given + n]
        else:
            read1 = getattr(self.stream, "read1", None)
            data = read1(len(view)) if read1 is not None else self.stream.read(len(view))
            n = len(data)
            view[:n] = data
        self._given += n
        return n

    def tell(self) -> int:
        return self._given


def _read_some(stream: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, returning early only at the end of the input (the head must be long
    enough to recognise the format whenever the input is)."""
    parts, size = [], 0
    while size < n:
        read1 = getattr(stream, "read1", None)
        block = read1(n - size) if read1 is not None else stream.read(n - size)
        if not block:
            break
        parts.append(block)
        size += len(block)
    return b"".join(parts)


def register(key: str, stream: IO[bytes], name: str) -> OnceStream:
    """Start reading ``stream`` (its head is read now) and keep it for :func:`take`."""
    once = OnceStream(stream, name)
    with _lock:
        _opened[key] = once
    return once


def take(key: str) -> IO[bytes] | None:
    """The registered stream of ``key`` as a buffered reader (once: a second open is an error
    the caller reports), or None when ``key`` is not such an input."""
    with _lock:
        once = _opened.get(key)
        if once is None:
            return None
        if once.opened:
            raise OSError(f"{once.name} can be read only once")
        once.opened = True
    return io.BufferedReader(once, buffer_size=1 << 16)


def forget(key: str) -> None:
    """Drop the stream of ``key`` (closing it, unless it is standard input)."""
    with _lock:
        stream = _opened.pop(key, None)
    if stream is not None and key != "-":
        stream.stream.close()
