"""Exact compatibility with the original BytePiece 0.6.3 (ids recorded in ../shared/golden)."""

from __future__ import annotations

import base64
import json

import pytest

MODELS = ["bytepiece_80k", "bytepiece.plus.40k", "bytepiece.plus.160k", "bytepiece.zh.id.eu.80k"]


def _records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().split("\n") if line]


@pytest.mark.parametrize("name", MODELS)
def test_encode_matches_original_ids(shared, load_shared_tokenizer, name):
    tokenizer = load_shared_tokenizer(name)
    records = _records(shared / "golden" / f"{name}.jsonl")
    assert len(records) == 449
    mismatches = [i for i, r in enumerate(records) if tokenizer.encode(r["text"]) != r["ids"]]
    assert mismatches == [], f"{len(mismatches)} texts differ, first: {records[mismatches[0]]['text'][:80]!r}"


@pytest.mark.parametrize("name", MODELS)
def test_encode_batch_matches_original_ids(shared, load_shared_tokenizer, name):
    tokenizer = load_shared_tokenizer(name)
    records = _records(shared / "golden" / f"{name}.jsonl")
    for threads in (1, 2):
        got = tokenizer.encode_batch([r["text"] for r in records], num_threads=threads)
        assert got == [r["ids"] for r in records]


def test_tokenize_matches_original_pieces(shared, load_shared_tokenizer):
    tokenizer = load_shared_tokenizer("bytepiece_80k")
    for r in _records(shared / "golden" / "bytepiece_80k.pieces.jsonl"):
        assert tokenizer.tokenize(r["text"]) == [base64.b64decode(p) for p in r["pieces_b64"]]


def test_decode_gives_nfc_text(shared, load_shared_tokenizer):
    import unicodedata

    tokenizer = load_shared_tokenizer("bytepiece_80k")
    for r in _records(shared / "golden" / "bytepiece_80k.jsonl"):
        assert tokenizer.decode(r["ids"]) == unicodedata.normalize("NFC", r["text"])


def test_vocab_sizes_match_meta(shared, load_shared_tokenizer):
    meta = json.loads((shared / "golden" / "meta.json").read_text())
    for name in MODELS:
        assert load_shared_tokenizer(name).vocab_size == meta["models"][name]["vocab_size"]
