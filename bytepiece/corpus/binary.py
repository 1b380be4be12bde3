"""Input that is not text: refused with a message, never tokenized as garbage.

Three signs, each cheap enough to look for in every block read (not only at the start of a
file, since text followed by gigabytes of NUL bytes must stop at the NUL bytes; control
characters are looked for in the first 64 KiB of each block):

- the magic bytes of a container bytepiece does not read (xz, bzip2, zip, ELF, PDF, PNG), at the
  start of a file;
- NUL bytes, which text in UTF-8 (or any ASCII-compatible encoding) does not hold: more than
  5% of a block;
- control characters *and* invalid UTF-8 together, the mark of random or compressed bytes:
  text in any script is valid UTF-8 with almost no C0 controls; text in a legacy encoding
  (Latin-1, GBK) is invalid UTF-8 but has no controls (it is read with U+FFFD replacements, as
  before); files separated by ``\\x01`` or ``\\x1e`` have controls but are valid UTF-8.
"""

from __future__ import annotations

import re

from ..errors import InputError
from .utf8 import decode

UNSUPPORTED = (
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it first (xz -d)"),
    (b"BZh", "bzip2-compressed; decompress it first (bunzip2)"),
    (b"PK\x03\x04", "a zip archive; extract the text files from it"),
    (b"\x7fELF", "an executable (ELF), not text"),
    (b"%PDF-", "a PDF document; extract its text first"),
    (b"\x89PNG", "a PNG image, not text"),
)
MAX_NUL_SHARE = 0.05
MAX_CONTROL_SHARE = 0.02
MAX_INVALID_SHARE = 0.10
MIN_SIGNS = 8  # fewer controls than this in a block never make it binary (a short file with one \x01)
SMALL_BLOCK = 1 << 12  # a short block inside a file is judged as if it were this long
SAMPLE_BYTES = 1 << 16  # of each block, looked at for control characters (NUL bytes are counted in all of it)
#: C0 controls that text does not use: all but backspace (man pages), tab, newline, vertical
#: tab, form feed, carriage return and escape (terminal colours); and DEL.
CONTROLS = bytes(b for b in range(32) if b not in (8, 9, 10, 11, 12, 13, 27)) + b"\x7f"
_CONTROL = re.compile(b"[" + re.escape(CONTROLS) + b"]")
_HINT = "pass text, JSON Lines or Parquet files"


def check_head(head: bytes, label: str) -> None:
    """Refuse ``label`` when its first bytes (decompressed) are not text."""
    for magic, what in UNSUPPORTED:
        if head.startswith(magic):
            raise InputError(f"{label} is {what}")
    nul = head.count(0)
    if head and nul > MAX_NUL_SHARE * len(head):
        raise InputError(f"{label} looks binary ({nul:,} NUL bytes in its first {len(head):,}); {_HINT}")
    controls, invalid = _signs(head, len(head))
    if invalid:
        raise InputError(f"{label} looks binary ({controls:,} control characters and {invalid:,} invalid UTF-8 "
                         f"sequences in its first {len(head):,} bytes); {_HINT}")


def check_block(block: bytes, label: str, offset: int) -> None:
    """Refuse ``label`` when ``block``, found at byte ``offset`` of its (decompressed) content,
    is not text; the message names the offset of the first telling byte."""
    if not block:
        return
    judged = len(block) if offset == 0 else max(len(block), SMALL_BLOCK)
    nul = block.count(0) if block.find(0) >= 0 else 0  # find: a faster scan, and text has no NUL
    if nul > MAX_NUL_SHARE * judged:
        raise InputError(f"{label} holds binary data at byte {offset + block.index(0):,} ({nul:,} NUL bytes in "
                         f"{len(block):,}); {_HINT}")
    sample = block[:SAMPLE_BYTES]  # random data runs on for blocks: the start of each one finds it
    controls, invalid = _signs(sample, len(sample) if offset == 0 else max(len(sample), SMALL_BLOCK))
    if invalid:
        first = _CONTROL.search(sample)
        at = offset + (first.start() if first else 0)
        raise InputError(f"{label} holds binary data at byte {at:,} ({controls:,} control characters and "
                         f"{invalid:,} invalid UTF-8 sequences in {len(sample):,} bytes); {_HINT}")


def _signs(data: bytes, judged: int) -> tuple[int, int]:
    """(control characters, invalid UTF-8 sequences) when both are too many for text, else
    (controls, 0); invalid sequences are only counted when the controls are already suspect."""
    controls = len(data) - len(data.translate(None, CONTROLS))
    if controls < MIN_SIGNS or controls <= MAX_CONTROL_SHARE * judged:
        return controls, 0
    invalid = _invalid_sequences(data)
    return controls, invalid if invalid > MAX_INVALID_SHARE * judged else 0


def _invalid_sequences(data: bytes) -> int:
    return decode(data, "replace", "")[1]
