"""Chunks longer than the kernel's work arrays are segmented window by window, with bounded
memory and the same ids as the whole chunk at once (``kernels/encode.py``, ``_long_chunk``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bytepiece.kernels.encode as K
from bytepiece import Tokenizer

ALPHAS = [-1.0, 0.3, 2e6]  # Viterbi, the linear-domain sampler, the log-domain sampler


def _tokenizer() -> Tokenizer:
    counts = {bytes([b]): 1 + b % 7 for b in range(256)}
    counts.update({b"ab": 30, b"abc": 12, b"bc": 25, b"abcd": 9, b"cd": 20, b" a": 11, b"ba": 7, b"\xe4\xb8\xad": 15,
                   b"\xe4\xb8\xad\xe6\x96\x87": 8, b"xy": 6, b"xyz": 5, b"zz": 4})
    return Tokenizer.from_counts(counts, normalization="none")


TOK = _tokenizer()


def _encode(tok: Tokenizer, data: bytes, alpha: float, window: int, seed: int = 5):
    core = tok.segmenter
    t = core.tables(alpha)
    buf = np.frombuffer(data, np.uint8)
    offsets = np.array([0, len(data)], np.int64)
    ids, _, forced = K.encode_segments(t.base_check, t.pair, t.piece, t.values, K.MODE_TAGS[t.mode], t.max_len,
                                       float(t.alpha),
                                       buf, offsets, np.arange(2, dtype=np.int64), np.zeros(0, np.int32),
                                       np.uint64(seed), np.int64(0), np.int64(-1), np.int64(-1), window)
    return ids.tolist(), forced


@pytest.mark.parametrize("alpha", ALPHAS)
@given(st.text("abcd xyz中文\n", max_size=400))
def test_windows_give_the_whole_chunks_ids(alpha, text):
    """Smallest windows (many shifts and common-ancestor searches): the same ids whenever no cut
    was forced, and always a segmentation of the text."""
    data = text.encode()
    small, forced = _encode(TOK, data, alpha, window=1)
    whole, none = _encode(TOK, data, alpha, window=1 << 30)
    assert none == 0
    assert TOK.decode_bytes(small) == data
    if forced == 0:
        assert small == whole


@pytest.mark.parametrize("alpha", ALPHAS)
def test_real_text_in_windows(alpha):
    """A long line of real text (newlines removed: one chunk) never needs a forced cut."""
    from bytepiece_data import DEFAULT_MODEL, SAMPLE_CORPUS, data_file

    default_tokenizer = Tokenizer(data_file(DEFAULT_MODEL))
    text = data_file(SAMPLE_CORPUS).read_text(encoding="utf-8").replace("\n", " ")
    data = default_tokenizer.normalize(text[:300_000])
    small, forced = _encode(default_tokenizer, data, alpha, window=4096)
    whole, _ = _encode(default_tokenizer, data, alpha, window=1 << 30)
    assert forced == 0
    assert small == whole


def test_a_run_of_one_character_is_cut_and_stays_a_segmentation():
    """In a run where the best split depends on where the run ends, no position is common to
    every path: the chunk is cut at the best path so far, once per half window."""
    tok = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"aa": 40, b"aaa": 70}, normalization="none")
    data = b"a" * 10_000 + b"b"
    ids, forced = _encode(tok, data, -1.0, window=256)
    assert forced > 0
    assert tok.decode_bytes(ids) == data
    whole, _ = _encode(tok, data, -1.0, window=1 << 30)
    assert abs(len(ids) - len(whole)) <= forced  # each cut costs at most one extra piece here


def test_long_texts_through_the_public_api():
    """``encode`` and ``encode_batch`` of a text longer than the kernels' window agree with the
    whole-chunk result (the window is 1 MiB)."""
    line = ("abcd xyz 中文 " * 120_000).encode()
    assert len(line) > K.WINDOW
    expected, _ = _encode(TOK, line, -1.0, window=1 << 30)
    assert TOK.encode(line) == expected
    flat, offsets = TOK.encode_batch([line, b"ab"], return_flat=True)
    assert flat[offsets[0]:offsets[1]].tolist() == expected
    sampled = TOK.encode(line, alpha=0.3, seed=9)
    assert sampled == _encode(TOK, line, 0.3, window=1 << 30, seed=int(_kernel_seed(9)))[0]


def _kernel_seed(seed: int):
    from bytepiece.options import kernel_seed

    return kernel_seed(seed)
