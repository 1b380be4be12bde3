"""The part of a text's encoding that no continuation can change (``Tokenizer.encode_stable``).

For text that is still arriving (LLM prompts typed or streamed, incremental tokenization), the
last tokens of ``encode(text)`` are provisional: more text can merge them into longer pieces or
re-split them. The stable part is decided exactly, without trying continuations:

1. Normalization. NFC can only change the last segment of the text (see ``bytepiece.offsets``):
   the bytes before it, K of them, are the same in the normalized form of every continuation.
   The last segment counts as fixed too when it is a single character that nothing appended can
   compose with.
2. Segmentation. Whatever follows, the final path's last token boundary at or before K is some
   position q with ``K - max_piece_length < q <= K``, no earlier than the last chunk start fixed
   within the K bytes, and where q < K, some piece must start with ``text[q:K]`` and be longer.
   The path up to q is the Viterbi back-pointer chain from q, which depends only on the bytes
   before q. So every continuation's encoding starts with the common part of those chains: the
   chain to their lowest common ancestor.
3. The cut is moved back along the chain to a position where the rest of the input can stand on
   its own (a character boundary starting a normalization segment), and the rest is the tail.

``ids + encode(tail + more)`` then equals ``encode(text + more)`` (up to exact floating-point
ties between segmentations, which the common prefix makes no difference to).
"""

from __future__ import annotations

import unicodedata

import numpy as np

from ..errors import InputError
from ..normalize import NFC
from .core import Segmenter, Text
from .lattice import Lattice
from .offsets import Alignment, is_stable_starter, may_compose_with_next


def _starts_segment(ch: str) -> bool:
    return ch.isascii() or is_stable_starter(ch)


def _fixed_chars(text: str, normalization: str) -> int:
    """Input characters whose normalized form no continuation changes (a prefix of the text)."""
    if normalization != NFC or not text:
        return len(text)
    i = len(text) - 1
    while i > 0 and not _starts_segment(text[i]):
        i -= 1
    if i == len(text) - 1 and not may_compose_with_next(text[i]):
        return len(text)
    return i


def stable_cut(lattice: Lattice, data: bytes, k: int, valid) -> tuple[list[int], int]:
    """(ids, p): the tokens of ``data``'s Viterbi path up to byte p, the latest position that
    every continuation of ``data[:k]`` keeps as a token boundary with the same tokens before it
    and for which ``valid(p)`` holds."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if len(arr) == 0:
        return [], 0
    back, piece_ids, _ = lattice.viterbi(arr)
    # the last chunk boundary decided within the fixed bytes: '\n' then a byte that is not
    a = 0
    for x in range(k - 1, 0, -1):
        if arr[x - 1] == 10 and arr[x] != 10:
            a = x
            break
    window = {k}
    for q in range(max(a, k - lattice.core.max_piece_length + 1), k):
        if lattice.extends_past(data, q, k):
            window.add(q)
    while len(window) > 1:
        x = max(window)
        window.remove(x)
        window.add(int(back[x]))
    p = window.pop()
    while p > 0 and not valid(p):
        p = int(back[p])
    ids: list[int] = []
    e = p
    while e > 0:
        ids.append(int(piece_ids[e]))
        e = int(back[e])
    ids.reverse()
    return ids, p


def encode_stable(core: Segmenter, lattice: Lattice, text: Text) -> tuple[list[int], Text]:
    """``(ids, tail)``: ids is the longest prefix of ``encode(text)`` that
    ``encode(text + s)`` starts with for every string s (as this module decides it), and tail the
    input after the text those ids cover (a str for str input, bytes for bytes input)."""
    if isinstance(text, str):
        return _encode_stable_text(core, lattice, text)
    if not isinstance(text, (bytes, bytearray, memoryview)):
        raise InputError(f"expected str or bytes, got {type(text).__name__}")
    data = bytes(text)
    if core.normalization == NFC:  # ASCII too: a final letter may compose with what follows (e + U+0301)
        cut = _incomplete_tail(data)
        try:
            body = data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            body = None  # invalid before the end: no continuation is valid UTF-8, none is normalized
        if body is not None:
            if cut == len(data):
                ids, tail = _encode_stable_text(core, lattice, body)
                return ids, tail.encode("utf-8")
            if not unicodedata.is_normalized("NFC", body):
                return [], data  # with or without a completing continuation: normalized or not
            chars = _fixed_chars(body, NFC)
            k = len(body[:chars].encode("utf-8"))
            starts = {0, len(data)}
            pos = 0
            for ch in body:
                if _starts_segment(ch):
                    starts.add(pos)
                pos += len(ch.encode("utf-8"))
            ids, p = stable_cut(lattice, data, k, starts.__contains__)
            return ids, data[p:]
    ids, p = stable_cut(lattice, data, len(data), lambda p: True)
    return ids, data[p:]


def _incomplete_tail(data: bytes) -> int:
    """Start of an incomplete UTF-8 sequence at the end of ``data`` (or ``len(data)``)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b & 0xC0 != 0x80:  # a lead byte (or ASCII)
            need = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return n - back if need > back else n
    return n


def _encode_stable_text(core: Segmenter, lattice: Lattice, text: str) -> tuple[list[int], str]:
    align = Alignment(text, core.normalization)
    normalized = align.normalized
    data = core.normalize(normalized)  # NFC text stays as it is; a lone surrogate is an InputError
    lengths = [len(ch.encode("utf-8")) for ch in normalized]
    cum = np.zeros(len(normalized) + 1, np.int64)
    np.cumsum(lengths, out=cum[1:])
    fixed = _fixed_chars(text, core.normalization)
    j_fixed = int(np.searchsorted(align.start, fixed)) if fixed < len(text) else len(normalized)
    k = int(cum[j_fixed])
    char_at = {int(b): j for j, b in enumerate(cum.tolist())}

    def valid(p: int) -> bool:
        j = char_at.get(p)
        if j is None:
            return False
        if j == len(normalized):
            return True
        i = int(align.start[j])
        return (j == 0 or align.start[j - 1] != i) and (i == 0 or _starts_segment(text[i]))

    ids, p = stable_cut(lattice, data, k, valid)
    j = char_at[p]
    i = len(text) if j == len(normalized) else int(align.start[j])
    return ids, text[i:]
