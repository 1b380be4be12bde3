"""Offsets map tokens back to the input, through NFC; checked by joining the spans (property
test), by a per-segment reference on decomposed text, and on byte units."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bytepiece import InputError, Tokenizer
from bytepiece.tokenizer.offsets import composition_sets, segment_starts

# ASCII, Chinese, accents (precomposed and decomposed), Hangul jamo, an emoji, newlines
CHARS = "ab c\n中文é\u0065\u0301\u0323\u1100\u1161\u11a8한😀"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer("data/default.model", special_tokens=["<|x|>"])


def _join(text, spans):
    out, prev = [], 0
    for start, end in spans:
        assert start <= end
        assert start <= prev or prev == start  # never a gap
        out.append(text[max(start, prev):end])
        prev = max(prev, end)
    return text[:0].join(out)


@given(st.text(CHARS, max_size=40))
def test_spans_cover_the_input(tok, text):
    ids, spans = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)
    assert len(spans) == len(ids)
    assert _join(text, spans) == text
    ids_b, spans_b = tok.encode_with_offsets(text, unit="byte")
    assert ids_b == ids
    assert _join(text.encode(), spans_b) == text.encode()


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_nfc_stable_text_joins_exactly(tok, text):
    text = unicodedata.normalize("NFC", text)
    ids, spans = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)
    assert _join(text, spans) == text
    # a token that ends inside a character shares that character with the next token
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s1 == e0 or (s1 < e0 and e0 - s1 >= 1)


def test_each_normalized_character_maps_to_its_segment(tok):
    text = "cafe\u0301 a\u0323\u0302 x\u0301"  # é composed from two, ậ from three, x́ stays decomposed
    ids, spans = tok.encode_with_offsets(text)
    assert tok.decode(ids) == unicodedata.normalize("NFC", text)
    starts = segment_starts(text) + [len(text)]
    bounds = set(starts)
    for start, end in spans:
        assert start in bounds and end in bounds
    # the text of the tokens, normalized, is the decoded text of the tokens
    assert "".join(unicodedata.normalize("NFC", text[s:e]) for s, e in _dedup(spans)) == tok.decode(ids)


def _dedup(spans):
    out = []
    for s in spans:
        if not out or s != out[-1]:
            out.append(s)
    return out


def test_partial_character_tokens_span_the_whole_character():
    counts = {bytes([b]): 1 for b in range(256)}  # only single bytes: every character is split
    tok = Tokenizer.from_counts(counts)
    ids, spans = tok.encode_with_offsets("a中b")
    assert spans == [(0, 1), (1, 2), (1, 2), (1, 2), (2, 3)]
    _, byte_spans = tok.encode_with_offsets("a中b", unit="byte")
    assert byte_spans == [(0, 1), (1, 4), (1, 4), (1, 4), (4, 5)]


def test_special_tokens_have_their_literal_span(tok):
    text = "héllo<|x|>wörld"
    ids, spans = tok.encode_with_offsets(text, allowed_special="all")
    assert ids == tok.encode(text, allowed_special="all")
    k = ids.index(tok.piece_to_id("<|x|>"))
    assert text[slice(*spans[k])] == "<|x|>"
    _, byte_spans = tok.encode_with_offsets(text, unit="byte", allowed_special="all")
    assert text.encode()[slice(*byte_spans[k])] == b"<|x|>"
    assert _join(text.encode(), byte_spans) == text.encode()


def test_bytes_input(tok):
    data = "中文 abc".encode()
    ids, spans = tok.encode_with_offsets(data, unit="byte")
    assert ids == tok.encode(data) and _join(data, spans) == data
    bad = b"ab\xffcd\xe4"
    ids, spans = tok.encode_with_offsets(bad, unit="byte")
    assert ids == tok.encode(bad) and _join(bad, spans) == bad
    with pytest.raises(InputError, match="unit='byte'"):
        tok.encode_with_offsets(bad)
    with pytest.raises(InputError, match="unit must"):
        tok.encode_with_offsets("a", unit="word")


def test_raw_normalization_maps_identically():
    tok = Tokenizer("data/default.model", normalization="none")
    text = "e\u0301t\u00e9"
    ids, spans = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)
    assert _join(text, spans) == text


def test_composition_sets_know_the_usual_pairs():
    first, second = composition_sets()
    assert ord("e") in first and 0x0301 in second and 0x0338 in second and ord("<") in first
    assert ord("q") not in first and ord("1") not in first and ord("!") not in first
