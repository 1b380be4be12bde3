"""zstd input that ends where a frame ends, or an error.

zstandard's streaming reader stops quietly when its input runs out, in the middle of a frame or
after nothing but a magic number, so a file cut in half reads as a shorter corpus. The decoder
checks the content of what it gets; :class:`FrameWalker` checks that the input is whole: it
follows the frame and block headers (RFC 8878) of the compressed bytes as the decoder reads
them, skipping the payloads by their sizes, and at the end of the input says whether it stopped
on a frame boundary after at least one frame. Memory stays bounded: nothing is decompressed
twice and no payload is kept.
"""

from __future__ import annotations

from typing import IO

_FRAME_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_DICT_ID_BYTES = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES = (0, 2, 4, 8)  # by Frame_Content_Size_flag; flag 0 means 1 byte in a single segment
_RLE_BLOCK, _RESERVED_BLOCK = 1, 3


class ZstdFormatError(ValueError):
    """The compressed bytes are not a whole zstd stream (truncated, or not zstd at all)."""


class FrameWalker:
    """Follows frame and block headers through ``feed`` calls; ``finish`` judges the end."""

    def __init__(self) -> None:
        self.frames = 0  # frames whose last header was seen
        self.offset = 0  # compressed bytes fed
        self._state = "magic"
        self._want = 4  # bytes of the next header field
        self._field = b""
        self._skip = 0  # payload bytes still to pass over
        self._checksum = False

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            step = min(self._want - len(self._field), n - i)
            self._field += data[i:i + step]
            i += step
            if len(self._field) == self._want:
                field, self._field = self._field, b""
                self._header(field, self.offset + i - len(field))
        self.offset += n

    def finish(self) -> None:
        """At the end of the input: an error unless it ends a frame (and one was seen)."""
        if self._skip or self._field or self._state != "magic":
            raise ZstdFormatError(f"it ends inside a frame, at byte {self.offset:,}")
        if not self.frames:
            raise ZstdFormatError("it holds no frame")

    def _header(self, field: bytes, at: int) -> None:
        value = int.from_bytes(field, "little")
        state = self._state
        if state == "magic":
            if value == _FRAME_MAGIC:
                self._expect("descriptor", 1)
            elif value & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                self._expect("skippable size", 4)
            else:
                raise ZstdFormatError(f"no zstd frame starts at byte {at:,}")
        elif state == "skippable size":
            self._skip = value
            self._end_frame()
        elif state == "descriptor":
            if value & 0x08:
                raise ZstdFormatError(f"reserved bit set in the zstd frame header at byte {at:,}")
            single_segment = bool(value & 0x20)
            self._checksum = bool(value & 0x04)
            content_flag = value >> 6
            rest = (0 if single_segment else 1) + _DICT_ID_BYTES[value & 0x03] + (
                _CONTENT_SIZE_BYTES[content_flag] or (1 if single_segment else 0))
            self._expect("frame header", rest) if rest else self._expect("block", 3)
        elif state == "frame header":
            self._expect("block", 3)
        elif state == "block":
            kind = (value >> 1) & 0x03
            if kind == _RESERVED_BLOCK:
                raise ZstdFormatError(f"reserved block type in zstd data at byte {at:,}")
            self._skip = 1 if kind == _RLE_BLOCK else value >> 3
            if not value & 0x01:
                self._expect("block", 3)
            elif self._checksum:
                self._expect("checksum", 4)
            else:
                self._end_frame()
        else:  # checksum: the decoder verifies it
            self._end_frame()

    def _expect(self, state: str, size: int) -> None:
        self._state, self._want = state, size

    def _end_frame(self) -> None:
        self.frames += 1
        self._expect("magic", 4)


class CheckedRaw:
    """The compressed file as the zstd decoder reads it, walked by a :class:`FrameWalker`;
    reaching its end raises :class:`ZstdFormatError` unless the input is whole."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.walker = FrameWalker()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.walker.feed(data)
        else:
            self.walker.finish()
        return data

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed


class ZstdReader:
    """Decompressed bytes of every frame of a zstd file, in order; ``read`` raises
    :class:`ZstdFormatError` where the file does not end with a complete frame."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._source = CheckedRaw(raw)
        self._reader = zstandard.ZstdDecompressor().stream_reader(self._source,  # type: ignore[arg-type]
                                                                  read_across_frames=True,
                                                                  closefd=False)

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if not data and size != 0:
            while self._source.read(1 << 16):  # whatever the decoder left unread is walked too
                pass
        return data

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> ZstdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
