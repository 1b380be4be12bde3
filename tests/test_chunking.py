"""The chunking rule has one specification, the regexes of ``bytepiece.normalize`` (the
original's, in Python), and the kernels of ``bytepiece.kernels.chunking`` that encoding and
training actually cut with. These tests hold the kernels to the specification on random text:
newline runs, carriage returns, multi-byte characters, decimal digits of several scripts and
look-alikes that are not decimal digits, several texts in one buffer, small caps that force
every cap rule to fire."""

from __future__ import annotations

import contextlib
import unicodedata

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bytepiece import Tokenizer
from bytepiece.kernels.chunking import chunk_boundaries, chunk_end
from bytepiece.kernels.stand_ins import kernels_only
from bytepiece.normalize import (
    TRAINING_MAX_CHUNK_CHARS,
    TRAINING_MAX_NEWLINES,
    chunk_bounds,
    chunk_bounds_by_regex,
    chunks,
    digit_table,
    training_chunks,
)

# ASCII, newlines and \r, 2-, 3- and 4-byte characters, decimal digits of other scripts
# (Arabic-Indic, Devanagari, fullwidth, mathematical bold) and numerals that are not decimal
# digits (superscript two, Roman numeral one, circled one), plus a decomposed accent for NFC.
ALPHABET = "ab 1\n\n\r\té中🙂٣५５𝟗²Ⅰ①e\u0301"
texts = st.text(alphabet=ALPHABET, max_size=80).map(lambda t: unicodedata.normalize("NFC", t))


def _kernel_encoding_chunks(data: bytes) -> list[bytes]:
    arr = np.frombuffer(data, dtype=np.uint8)
    out, a = [], 0
    while a < len(arr):
        b = int(chunk_end(arr, a, len(arr)))
        out.append(data[a:b])
        a = b
    return out


@given(texts)
@example("\n\nab\n\r\ncd")
@example("")
def test_encoding_chunks_kernel_matches_the_regex(text):
    data = text.encode("utf-8")
    expected = [c.encode("utf-8") for c in chunks(text)]
    assert _kernel_encoding_chunks(data) == expected
    assert chunks(data) == expected  # the bytes form of the specification cuts the same


@given(st.lists(texts, min_size=1, max_size=4), st.integers(1, 6), st.integers(1, 3), st.booleans())
@example(["12ab\n\n\n中中中中中中中\n", "٣x"], 3, 2, True)
def test_training_chunk_kernel_matches_the_regex(batch, max_chars, max_newlines, isolate_digits):
    data = [t.encode("utf-8") for t in batch]
    buf = np.frombuffer(b"".join(data), dtype=np.uint8)
    ends = np.cumsum([len(d) for d in data]).astype(np.int64)
    digits = digit_table() if isolate_digits else np.zeros(0, dtype=np.uint8)
    bounds = chunk_boundaries(buf, ends, max_chars, max_newlines, digits).tolist()
    got = [bytes(buf[a:b]) for a, b in zip(bounds, bounds[1:])]
    expected = [c for t in batch for c in training_chunks(t, isolate_digits=isolate_digits, max_chars=max_chars,
                                                          max_newlines=max_newlines)]
    assert got == expected
    # the stand-in that cuts small buffers (no kernel to compile) gives the same bounds
    assert chunk_bounds_by_regex(bytes(buf), ends, max_chars, max_newlines, isolate_digits).tolist() == bounds


def test_training_chunk_stand_in_leaves_invalid_utf8_to_the_kernel():
    buf = np.frombuffer(b"ab\xff\ncd\n", dtype=np.uint8)
    ends = np.array([len(buf)], dtype=np.int64)
    assert chunk_bounds_by_regex(bytes(buf), ends, 10, 1, False) is None
    assert chunk_bounds(buf, ends, max_newlines=1).tolist() == [0, 4, 7]


@pytest.mark.parametrize("kernel", [False, True], ids=["regex", "kernel"])
def test_training_caps_at_their_defaults(kernel):
    """``chunk_bounds`` passes the original's caps: 10,000 characters, 100 newlines (small
    buffers are cut by the regexes, others by the kernel)."""
    text = "中" * (TRAINING_MAX_CHUNK_CHARS + 7) + "\n" * (TRAINING_MAX_NEWLINES + 3) + "x"
    data = text.encode("utf-8")
    buf = np.frombuffer(data, dtype=np.uint8)
    with kernels_only() if kernel else contextlib.nullcontext():
        bounds = chunk_bounds(buf, np.array([len(data)], dtype=np.int64)).tolist()
    got = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert got == list(training_chunks(text))
    assert [len(c) for c in got] == [3 * TRAINING_MAX_CHUNK_CHARS, 3 * 7 + TRAINING_MAX_NEWLINES, 3, 1]


@given(st.text(alphabet="xy\n", max_size=40))
def test_encoding_never_joins_pieces_across_chunks(text):
    """End to end: a model whose best pieces span a newline still encodes each chunk on its
    own, exactly as the specification's chunks encoded one by one."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"x\ny": 10_000, b"\nx": 5_000, b"y\n\nx": 8_000})
    tok = Tokenizer.from_counts(counts)
    expected = [i for chunk in chunks(text) for i in tok.encode(chunk)]
    assert tok.encode(text) == expected
    assert tok.encode_batch([text], return_flat=True)[0].tolist() == expected
