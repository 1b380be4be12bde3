"""encode_stable: the ids it returns start encode(text + s) for every continuation s (checked
exhaustively over short continuations and with random ones), and the tail is the rest."""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Tokenizer

COUNTS = {bytes([b]): 1 + b % 4 for b in range(256)}
COUNTS.update({b"ab": 30, b"abab": 12, b"aba": 9, b"ba": 20, b"bab": 7, b"b\n": 4, b"\n\n": 6, b"aab": 5,
               "é".encode(): 8, "éa".encode(): 6})
SMALL_ALPHABET = ["a", "b", "\n", "e", "\u0301"]


@pytest.fixture(scope="module")
def small():
    return Tokenizer.from_counts(COUNTS)


@pytest.fixture(scope="module")
def default():
    return Tokenizer("data/default.model")


def _check(tok, text, continuations):
    ids, tail = tok.encode_stable(text)
    full = tok.encode(text)
    assert full[: len(ids)] == ids
    assert text.endswith(tail)
    # the ids cover the text before the tail (normalized)
    head = text[: len(text) - len(tail)]
    assert tok.decode(ids) == unicodedata.normalize("NFC", head) if tok.normalization == "nfc" else head
    for s in continuations:
        assert tok.encode(text + s)[: len(ids)] == ids, (text, s)
    return ids, tail


@given(st.text("".join(SMALL_ALPHABET), max_size=12))
def test_no_short_continuation_changes_the_stable_ids(small, text):
    continuations = ["".join(c) for n in range(4) for c in itertools.product(SMALL_ALPHABET, repeat=n)]
    _check(small, text, continuations)


@given(st.text("ab \n中文字é\u0301\u0323xyz.,", max_size=40), st.lists(st.text(max_size=12), max_size=8))
def test_random_continuations_on_a_real_model(default, text, continuations):
    ids, tail = _check(default, text, [c for c in continuations if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in c)])
    # incremental tokenization: the stable ids plus the tail's encoding is the whole encoding
    assert ids + default.encode(tail) == default.encode(text)


def test_nfc_composition_with_the_continuation(default):
    ids, tail = default.encode_stable("cafe")
    assert tail.endswith("e")  # "cafe" + U+0301 is "café"
    assert default.encode("cafe\u0301")[: len(ids)] == ids
    ids, tail = default.encode_stable("done! ")
    assert default.decode(ids) + tail == "done! "
    for text in ("cafe", "a plain ASCII prompt, then e"):  # bytes and str decide alike, ASCII too
        ids, tail = default.encode_stable(text)
        assert default.encode_stable(text.encode()) == (ids, tail.encode())
        assert default.encode(text.encode() + "\u0301".encode())[: len(ids)] == ids


def test_long_text_keeps_almost_everything(default, small):
    text = "The tokenizer keeps every token before the last few stable. " * 20 + "Then more"
    ids, tail = default.encode_stable(text)
    assert len(tail) < 20 and len(ids) > 0.9 * len(default.encode(text))
    # the default model has no piece longer than "\n" that starts with "\n": a final newline is final
    assert default.encode_stable("first line\nsecond line\n") == (default.encode("first line\nsecond line\n"), "")
    # here "\n\n" is a piece, so the final newline run may still grow
    ids, tail = small.encode_stable("ab\nab\n")
    assert small.decode(ids) == "ab\nab" and tail == "\n"


def test_bytes_input_and_incomplete_characters(default):
    data = "中文字符".encode()
    ids, tail = default.encode_stable(data)
    assert isinstance(tail, bytes) and data.endswith(tail)
    cut = data[:-1]  # the last character is incomplete
    ids, tail = default.encode_stable(cut)
    assert tail.endswith(cut[-2:])
    assert default.encode(cut + data[-1:])[: len(ids)] == ids
    raw = Tokenizer("data/default.model", normalization="none")
    ids, tail = raw.encode_stable(b"abc\xff def")
    assert raw.encode(b"abc\xff def ghi")[: len(ids)] == ids


def test_empty(default):
    assert default.encode_stable("") == ([], "")
    assert default.encode_stable(b"") == ([], b"")
