"""decode(encode(t)) gives back the (NFC) text, for any Unicode text and any sampling."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import Tokenizer

# Text rich in the cases that break tokenizers: newlines, CR, NUL, combining marks, emoji
# sequences (ZWJ, skin tones, flags), CJK, and anything else hypothesis finds.
tricky = st.sampled_from(["\n", "\r\n", "\x00", "e\u0301", "\u1100\u1161\u11a8", "👩‍👩‍👧", "👍🏽", "🇨🇳", "中文", "  ", "\t", "\u212b", "\ufeff"])
texts = st.lists(st.one_of(st.text(), tricky), max_size=12).map("".join)


@given(texts)
def test_roundtrip_tiny_vocabulary(tiny_tokenizer, text):
    nfc = unicodedata.normalize("NFC", text)
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == nfc
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text, alpha=0.3, seed=1)) == nfc


@given(texts)
def test_roundtrip_published_model(load_shared_tokenizer, text):
    tokenizer = load_shared_tokenizer("bytepiece_80k")
    nfc = unicodedata.normalize("NFC", text)
    assert tokenizer.decode(tokenizer.encode(text)) == nfc
    assert tokenizer.decode(tokenizer.encode(text, alpha=0.1, seed=2)) == nfc
    assert b"".join(tokenizer.tokenize(text)) == nfc.encode()


@given(st.binary(max_size=200))
def test_raw_mode_is_byte_exact(tiny_tokenizer, data):
    raw = Tokenizer(tiny_tokenizer.model, normalization="none")
    assert raw.decode_bytes(raw.encode(data)) == data
    assert raw.decode_bytes(raw.encode(data, alpha=1.0, seed=4)) == data


def test_invalid_utf8_bytes_are_encoded_as_given(tiny_tokenizer):
    data = b"ab\xff\xfe\xe4\xb8"
    assert tiny_tokenizer.decode_bytes(tiny_tokenizer.encode(data)) == data
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(data)) == data.decode("utf-8", "replace")
    with pytest.raises(UnicodeDecodeError):
        tiny_tokenizer.decode(tiny_tokenizer.encode(data), errors="strict")


def test_bytes_input_is_normalized_like_str(tiny_tokenizer):
    assert tiny_tokenizer.encode("e\u0301".encode()) == tiny_tokenizer.encode("\u00e9")


def test_million_character_line(tiny_tokenizer):
    text = ("中文abcd " * 125_000)[:1_000_000]
    ids = tiny_tokenizer.encode(text)
    assert tiny_tokenizer.decode(ids) == text


def test_catastrophically_repetitive_text(tiny_tokenizer):
    for text in ["a" * 100_000, "\n" * 50_000, " " * 70_000, "ab" * 60_000]:
        assert tiny_tokenizer.decode(tiny_tokenizer.encode(text, alpha=0.0, seed=1)) == text
        assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_special_tokens(tiny_tokenizer):
    ids = tiny_tokenizer.encode("ab", add_bos=True, add_eos=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert tiny_tokenizer.decode(ids) == "ab"
    assert [tiny_tokenizer.id_to_piece(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert tiny_tokenizer.piece_to_id("<eos>") == 2
    assert tiny_tokenizer.piece_to_id("ab") == tiny_tokenizer.piece_to_id(b"ab")


def test_empty_inputs(tiny_tokenizer):
    assert tiny_tokenizer.encode("") == []
    assert tiny_tokenizer.encode("", add_bos=True) == [1]
    assert tiny_tokenizer.encode_batch([]) == []
    flat, offsets = tiny_tokenizer.encode_batch([], return_flat=True)
    assert len(flat) == 0 and offsets.tolist() == [0]
    assert tiny_tokenizer.encode_batch(["", "ab", ""]) == [[], tiny_tokenizer.encode("ab"), []]
    assert tiny_tokenizer.decode([]) == ""


# Items that normalize differently alone than joined with a neighbour: a combining mark after a
# base letter, Hangul jamo, a character whose NFC is another one, invalid UTF-8 split over items.
batch_items = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["e", "\u0301", "\u1100", "\u1161", "\u212b", "abc", "中文", "", "\n", "x\u0301\u0323"]),
)


@given(st.lists(batch_items, max_size=10))
def test_batch_of_str_equals_single_calls(tiny_tokenizer, texts):
    expected = [tiny_tokenizer.encode(t) for t in texts]
    assert tiny_tokenizer.encode_batch(texts, num_threads=1) == expected
    raw = Tokenizer(tiny_tokenizer.model, normalization="none")
    assert raw.encode_batch(texts, num_threads=1) == [raw.encode(t) for t in texts]


@given(st.lists(st.one_of(batch_items.map(str.encode), st.sampled_from([b"\xe4", b"\xb8\xad", b"\xff", b"ab\xc3"])),
                max_size=10))
def test_batch_of_bytes_equals_single_calls(tiny_tokenizer, texts):
    assert tiny_tokenizer.encode_batch(texts, num_threads=1) == [tiny_tokenizer.encode(t) for t in texts]
    raw = Tokenizer(tiny_tokenizer.model, normalization="none")
    assert raw.encode_batch(texts, num_threads=1) == [raw.encode(t) for t in texts]


@given(st.lists(st.one_of(batch_items, batch_items.map(str.encode), batch_items.map(lambda t: bytearray(t.encode()))),
                max_size=8))
def test_mixed_batch_equals_single_calls(tiny_tokenizer, texts):
    assert tiny_tokenizer.encode_batch(texts, num_threads=1) == [tiny_tokenizer.encode(t) for t in texts]
