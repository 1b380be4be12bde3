"""A tokenizer with added special tokens (ids after its pieces) gives the continuation side and
the harness exactly what the same tokenizer without them gives: the specials have no bytes, so
no byte-level probability, healing set or profile may change."""

from __future__ import annotations

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece.continuation import ByteLevelLM, NGramLM, VocabIndex, complete
from bytepiece.evaluation.metrics import piece_lengths
from bytepiece_data import data_file

SPECIALS = ["<x>", "<y>"]


@pytest.fixture(scope="module")
def pair():
    plain = Tokenizer(data_file("default.model"))
    special = Tokenizer(data_file("default.model"), special_tokens=SPECIALS)
    text = data_file("sample_corpus.txt").read_text(encoding="utf-8")[:200_000]
    ids = plain.encode(text)
    assert ids == special.encode(text)  # text never holds the specials: same ids
    lms = {name: NGramLM.train(ids, tok.vocab_size, order=3, min_id=3)
           for name, tok in (("plain", plain), ("special", special))}
    return plain, special, lms


def test_the_index_maps_every_id_to_its_piece(pair):
    _, special, _ = pair
    assert special.first_piece_id == 3
    index = VocabIndex.from_tokenizer(special)
    for i in range(special.vocab_size):
        expected = special.id_to_piece(i)
        assert index.piece(i) == (expected if isinstance(expected, bytes) else b"")


@pytest.mark.parametrize("tokenizations", ["all", "canonical"])
def test_byte_level_probabilities_do_not_see_the_specials(pair, tokenizations):
    plain, special, lms = pair
    a = ByteLevelLM(plain, lms["plain"], tokenizations=tokenizations)
    b = ByteLevelLM(special, lms["special"], tokenizations=tokenizations)
    for prompt in ["The quick bro", "in the", "中华人民"]:
        pa, pb = a.next_byte_probs(prompt), b.next_byte_probs(prompt)
        # the specials take a share of the LM's smoothing mass, so only the order of magnitude
        # of the difference is fixed: a shifted index gave differences near 1
        assert np.abs(np.asarray(pa) - np.asarray(pb)).max() < 1e-3
    for strategy in ["naive", "healing", f"exact-{tokenizations}"]:
        assert complete(special, lms["special"], "The quick bro", max_new_bytes=6, strategy=strategy) \
            == complete(plain, lms["plain"], "The quick bro", max_new_bytes=6, strategy=strategy)


def test_piece_lengths_leave_the_specials_at_zero(pair):
    plain, special, _ = pair
    lengths = piece_lengths(special)
    assert len(lengths) == special.vocab_size
    assert lengths[:plain.vocab_size].tolist() == piece_lengths(plain).tolist()
    assert lengths[plain.vocab_size:].tolist() == [0, 0]
