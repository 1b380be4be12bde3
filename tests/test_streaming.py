"""DecodeStream: the concatenation of step() and flush() is decode(ids), for any id sequence,
including ids that split UTF-8 characters and ids of special tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import InputError, Tokenizer

# pieces that start or end inside characters: 中 is e4 b8 ad, 文 is e6 96 87
COUNTS = {bytes([b]): 1 + b % 4 for b in range(256)}
COUNTS.update({b"\xe4\xb8": 5, b"\xad\xe6": 4, b"\x96\x87a": 3, "中文".encode(): 6, b"ab": 7})


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_counts(COUNTS, special_tokens=["<|end|>"])


@given(st.lists(st.integers(0, 256 + 3 + 5), max_size=40))
def test_concatenation_equals_decode(tok, ids):
    for errors in ("replace", "ignore", "backslashreplace"):
        stream = tok.decode_stream(errors=errors)
        text = "".join(stream.step(i) for i in ids) + stream.flush()
        assert text == tok.decode(ids, errors=errors)


@given(st.lists(st.integers(0, 256 + 3 + 5), max_size=30))
def test_strict_raises_exactly_when_decode_does(tok, ids):
    try:
        expected = tok.decode(ids, errors="strict")
    except UnicodeDecodeError:
        expected = None
    stream = tok.decode_stream(errors="strict")
    try:
        got = "".join(stream.step(i) for i in ids) + stream.flush()
    except UnicodeDecodeError:
        got = None
    assert got == expected


def test_split_character_is_held_back(tok):
    first, second = tok.piece_to_id(b"\xe4\xb8"), tok.piece_to_id(b"\xad\xe6")
    stream = tok.decode_stream()
    assert stream.step(first) == ""
    assert stream.pending == b"\xe4\xb8"
    assert stream.step(second) == "中"
    assert stream.step(tok.piece_to_id(b"\x96\x87a")) == "文a"
    assert stream.step(tok.piece_to_id("<|end|>")) == "<|end|>"
    assert stream.step(first) == ""
    assert stream.flush() == "\ufffd"
    assert stream.flush() == ""  # reset after a flush


def test_encoded_text_streams_back(tok):
    text = "中文 ab 中文a<|end|>"
    ids = tok.encode(text, allowed_special="all")
    stream = tok.decode_stream()
    assert "".join(stream.step(i) for i in ids) + stream.flush() == text
    stream = tok.decode_stream()
    assert stream.extend(ids[:3]) + stream.extend(ids[3:]) + stream.flush() == text


def test_bad_arguments(tok):
    with pytest.raises(InputError, match="errors"):
        tok.decode_stream(errors="nope")
    with pytest.raises(InputError, match="outside"):
        tok.decode_stream().step(10**6)
