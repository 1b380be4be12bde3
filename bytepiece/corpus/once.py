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

import functools
import io
import os
import select
import stat
import threading
from collections.abc import Callable
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
    """Up to ``n`` bytes, returning early at the end of the input or once a line is complete:
    a line typed at a terminal, or the first of a slow pipe, is encoded before the next one
    comes. What it has then decides the input: a compressed input's magic number is in its first
    bytes, and every block read later is checked for binary content as the head is."""
    parts, size = [], 0
    while size < n:
        read1 = getattr(stream, "read1", None)
        block = read1(n - size) if read1 is not None else stream.read(n - size)
        if not block:
            break
        parts.append(block)
        size += len(block)
        if b"\n" in block:  # no magic number holds a newline: one that came is already whole
            break
    return b"".join(parts)


def waiting(key: str) -> bool:
    """Whether the input registered as ``key`` has bytes ready to be read without waiting (True
    when that cannot be told): a run that reads it as it arrives hands out what it has encoded
    before it waits for more."""
    with _lock:
        once = _opened.get(key)
    return True if once is None else _readable(once.stream)


def arrives(key: str) -> bool:
    """Whether the input registered as ``key`` is one that data arrives on (a terminal, a pipe),
    as opposed to a file given as standard input (``< file``), which is all there already."""
    with _lock:
        once = _opened.get(key)
    return once is not None and waiting_check(once.stream) is not None


def waiting_check(stream: IO[bytes]) -> Callable[[], bool] | None:
    """For a stream that data arrives on (a terminal, a pipe): a function telling whether bytes
    are ready to be read without waiting, as :func:`waiting`; None for a file (always ready)."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return functools.partial(_readable, stream)


def _readable(stream: IO[bytes]) -> bool:
    try:
        readable, _, _ = select.select([stream], [], [], 0)
    except (OSError, ValueError, TypeError, io.UnsupportedOperation):
        return True
    return bool(readable)


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
