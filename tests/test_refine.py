"""The optional vocabulary refinement (bytepiece.training.refine) and its unigram kernels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bytepiece import Tokenizer, Trainer
from bytepiece.errors import InputError
from bytepiece.kernels.trie import build_trie
from bytepiece.kernels.unigram import (
    expected_counts,
    removal_loss,
    viterbi_counts,
    viterbi_pairs,
)
from bytepiece.model import Model
from bytepiece.training import Texts
from bytepiece.training.refine import refine_vocabulary

# -- helpers -----------------------------------------------------------------------------------

def _segmentations(text: bytes, vocab: set[bytes]):
    """Every segmentation of ``text`` into pieces of ``vocab`` (brute force)."""
    if not text:
        yield []
        return
    for e in range(1, len(text) + 1):
        if text[:e] in vocab:
            for rest in _segmentations(text[e:], vocab):
                yield [text[:e], *rest]


def _small_case(rng: np.random.Generator):
    alphabet = b"abc"
    pieces = {bytes([c]) for c in alphabet}
    while len(pieces) < 9:
        n = int(rng.integers(2, 5))
        pieces.add(bytes(rng.choice(list(alphabet), n).tolist()))
    pieces = sorted(pieces, key=lambda p: (len(p), p))
    probs = rng.uniform(0.05, 1.0, len(pieces))
    probs /= probs.sum()
    chunks = [bytes(rng.choice(list(alphabet), int(rng.integers(1, 11))).tolist()) for _ in range(4)]
    return pieces, probs, chunks


def _as_job(chunks: list[bytes]):
    buf = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    bounds = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return buf, bounds, 0, len(chunks)


_WORDS = None


def _synthetic_texts(n_texts: int, seed: int) -> list[str]:
    """Sentences of Zipf-distributed made-up words (ASCII and CJK), with spaces and punctuation."""
    global _WORDS
    if _WORDS is None:
        wr = np.random.default_rng(1234)
        latin = "etaoinshrdlcumwfgypbvk"
        cjk = [chr(0x4E00 + int(i)) for i in wr.integers(0, 400, 120)]
        words = []
        for i in range(600):
            if i % 3 == 2:
                words.append("".join(wr.choice(cjk, int(wr.integers(1, 4)))))
            else:
                words.append("".join(wr.choice(list(latin), int(wr.integers(2, 9)))))
        _WORDS = words
    words = _WORDS
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    p /= p.sum()
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n_texts):
        ids = rng.choice(len(words), int(rng.integers(5, 30)), p=p)
        texts.append(" ".join(words[i] for i in ids) + rng.choice([".", ",", "!", "。"]))
    return texts


@pytest.fixture(scope="module")
def synthetic():
    train = _synthetic_texts(1500, 7)
    held = _synthetic_texts(300, 8)
    seed_model = Trainer(order=6, max_vocab_size=700, min_count=2).train(Texts(train))[0]
    seed = dict(zip(seed_model.pieces, seed_model.counts.tolist()))
    return train, held, seed


def _bytes_per_token(counts: dict[bytes, int], texts: list[str]) -> float:
    tok = Tokenizer.from_counts(counts)
    flat, _ = tok.encode_batch(texts, return_flat=True)
    return sum(len(t.encode()) for t in texts) / len(flat)


# -- kernels -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", range(12))
def test_expected_counts_match_brute_force(case):
    rng = np.random.default_rng(case)
    pieces, probs, chunks = _small_case(rng)
    trie = build_trie(pieces)
    cell_probs = trie.cell_values(probs, 0.0)
    counts = np.zeros(len(pieces))
    loglik = expected_counts(trie.base_check, trie.piece, cell_probs, *_as_job(chunks), counts)
    index = {p: i for i, p in enumerate(pieces)}
    want = np.zeros(len(pieces))
    want_ll = 0.0
    for chunk in chunks:
        segs = list(_segmentations(chunk, set(pieces)))
        weights = np.array([math.prod(probs[index[p]] for p in s) for s in segs])
        z = weights.sum()
        want_ll += math.log(z)
        for s, w in zip(segs, weights):
            for p in s:
                want[index[p]] += w / z
    np.testing.assert_allclose(counts, want, rtol=1e-9, atol=1e-12)
    assert loglik == pytest.approx(want_ll, rel=1e-10)


@pytest.mark.parametrize("case", range(6))
def test_viterbi_counts_match_tokenizer(case):
    rng = np.random.default_rng(100 + case)
    pieces, probs, chunks = _small_case(rng)
    int_counts = np.maximum(1, np.round(probs * 1000)).astype(np.int64)
    others = [bytes([b]) for b in range(256) if bytes([b]) not in pieces]  # a model has every byte
    pieces = pieces + others
    int_counts = np.concatenate([int_counts, np.ones(len(others), np.int64)])
    tok = Tokenizer(Model.from_counts(dict(zip(pieces, int_counts.tolist()))), normalization="none")
    trie = build_trie(pieces)
    logp = np.log(int_counts.astype(np.float64)) - np.log(int_counts.sum())
    counts = np.zeros(len(pieces))
    total = viterbi_counts(trie.base_check, trie.piece, trie.cell_values(logp, -np.inf), *_as_job(chunks), counts)
    want = np.zeros(len(pieces))
    want_total = 0.0
    index = {p: i for i, p in enumerate(pieces)}
    for chunk in chunks:
        ids = tok.encode(chunk.decode())
        for i in ids:
            want[index[tok.id_to_piece(i)]] += 1
            want_total += logp[index[tok.id_to_piece(i)]]
    np.testing.assert_array_equal(counts, want)
    assert total == pytest.approx(want_total, rel=1e-12)
    # Pairs of adjacent pieces come from the same segmentations.
    keys = viterbi_pairs(trie.base_check, trie.piece, trie.cell_values(logp, -np.inf), *_as_job(chunks), len(pieces))
    want_keys = []
    for chunk in chunks:
        ids = [index[tok.id_to_piece(i)] for i in tok.encode(chunk.decode())]
        want_keys.extend(a * len(pieces) + b for a, b in itertools.pairwise(ids))
    assert sorted(keys.tolist()) == sorted(want_keys)


def test_removal_loss_formula():
    pieces = [b"a", b"b", b"ab", b"abb"]
    counts = np.array([10.0, 20.0, 15.0, 3.0])
    trie = build_trie(pieces)
    logp = np.log(counts) - np.log(counts.sum())
    lengths = np.array([1, 1, 2, 3], dtype=np.int64)
    starts = np.array([0, 1, 2, 4], dtype=np.int64)
    arena = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    loss = removal_loss(trie.base_check, trie.piece, trie.cell_values(logp, -np.inf), counts, arena, starts, lengths)
    total = counts.sum()
    assert np.isinf(loss[0]) and np.isinf(loss[1])
    # "ab" -> a + b
    alt = math.log(10 + 15) + math.log(20 + 15) - 2 * math.log(total + 15)
    assert loss[2] == pytest.approx(15 * (math.log(15 / total) - alt))
    # "abb" -> best of ab+b (15*20) and a+b+b (10*20*20 / total): ab + b here
    assert 15 * 20 > 10 * 20 * 20 / total
    alt = math.log(15 + 3) + math.log(20 + 3) - 2 * math.log(total + 3)
    assert loss[3] == pytest.approx(3 * (math.log(3 / total) - alt))


# -- refine_vocabulary -------------------------------------------------------------------------

def test_refined_vocabulary_is_valid_and_deterministic(synthetic):
    train, _, seed = synthetic
    size = 500
    stats: dict = {}
    a = refine_vocabulary(Texts(train), seed, size, max_piece_length=12, stats=stats)
    assert len(a) <= size - 3
    assert len(a) >= size - 3 - 20  # the corpus supports the full size
    assert all(bytes([b]) in a for b in range(256))
    assert all(isinstance(c, int) and c > 0 for c in a.values())
    assert all(len(p) <= 12 for p in a)
    assert not [p for p in a if len(p) > 1 and 0x80 <= p[0] < 0xC0]
    Model.from_counts(a)  # a valid model
    assert stats["passes"] >= 2 and stats["bytes"] == sum(len(t.encode()) for t in train)
    b = refine_vocabulary(Texts(train), seed, size, max_piece_length=12, workers=3, shard_bytes=4096)
    assert a == b  # many shards on three threads: same result
    c = refine_vocabulary(Texts(train), seed, size, max_piece_length=12, workers=2, batch_bytes=8192,
                          shard_bytes=8192, max_memory=1 << 16)
    assert a == c  # different batches, pair counts spilled and selected partition by partition: same result


def test_refinement_improves_on_the_seed(synthetic):
    """Refined at the seed's own size: better compression of training and held-out text, and a
    higher training likelihood under the Viterbi (unigram) model than the faithful vocabulary."""
    train, held, seed = synthetic
    size = len(seed) + 3
    stats: dict = {}
    refined = refine_vocabulary(Texts(train), seed, size, stats=stats)
    assert len(refined) <= len(seed)
    assert _bytes_per_token(refined, held) > 1.03 * _bytes_per_token(seed, held)
    assert _bytes_per_token(refined, train) > 1.03 * _bytes_per_token(seed, train)
    # Likelihood of the training text: the seed re-estimated (one Viterbi pass, no growth or
    # pruning) against the refined vocabulary.
    seed_stats: dict = {}
    refine_vocabulary(Texts(train), seed, size, grow=0, stats=seed_stats)
    assert stats["loglik"] > seed_stats["loglik"]


def test_pruning_only_shrinks_to_the_size(synthetic):
    train, held, seed = synthetic
    small = refine_vocabulary(Texts(train), seed, 400, grow=0, hard=False, em_iterations=2)
    assert len(small) <= 397
    assert set(small) <= set(seed) | {bytes([b]) for b in range(256)}
    # Likelihood-loss pruning beats keeping the most frequent pieces of the faithful trainer.
    faithful = Trainer(order=6, max_vocab_size=400, min_count=2).train(Texts(train))[0]
    faithful_counts = dict(zip(faithful.pieces, faithful.counts.tolist()))
    assert _bytes_per_token(small, held) >= _bytes_per_token(faithful_counts, held)


def test_bad_arguments(synthetic):
    train, _, seed = synthetic
    with pytest.raises(InputError, match="size"):
        refine_vocabulary(Texts(train), seed, 100)
    with pytest.raises(InputError, match="workers"):
        refine_vocabulary(Texts(train), seed, 500, workers=0)
    with pytest.raises(InputError, match="seed"):
        refine_vocabulary(Texts(train), {"ab": 3}, 500)
    with pytest.raises(InputError, match="shrink"):
        refine_vocabulary(Texts(train), seed, 500, shrink=1.5)


def test_empty_corpus_is_an_error():
    from bytepiece.errors import TrainingError

    with pytest.raises(TrainingError, match="empty"):
        refine_vocabulary(Texts([]), {b"ab": 2}, 300)


# -- wired into Trainer and the CLI -------------------------------------------------------------

def test_trainer_refine_option(synthetic):
    train, held, _ = synthetic
    faithful = Trainer(max_vocab_size=[600, 400], progress=False).train(Texts(train))
    refined = Trainer(max_vocab_size=[600, 400], progress=False, refine=True, workers=2).train(Texts(train))
    for f, r in zip(faithful, refined):
        assert r.vocab_size <= f.metadata["target_vocab_size"]
        assert r.metadata["trainer"].endswith("refinement") and r.metadata["training_options"]["refine"] is True
        better = _bytes_per_token(dict(zip(r.pieces, r.counts.tolist())), held)
        assert better > _bytes_per_token(dict(zip(f.pieces, f.counts.tolist())), held)
    assert faithful[0].metadata["training_options"]["refine"] is False


def test_cli_refine(runner, tmp_path, synthetic):
    from bytepiece_cli.app import app

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(t if t.endswith("\n") else t + "\n" for t in synthetic[0]), encoding="utf-8")
    out = tmp_path / "r.model"
    result = runner.invoke(app, ["train", str(corpus), "-o", str(out), "-v", "400", "--refine"])
    assert result.exit_code == 0, result.output
    assert "refine=True" in result.output and "time: refine" in result.output
    assert Tokenizer(out).model.metadata["training_options"]["refine"] is True
