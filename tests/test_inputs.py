"""Arguments of the encode methods: bad batch items, alpha types, and seeds."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from bytepiece import InputError, Tokenizer
from bytepiece.options import kernel_seed

# Enough characters that encode_batch really spreads the batch over threads.
BIG_BATCH = [("abcab" * (i % 17 + 1)) + "中文a\u0301" * (i % 3) + "\n\n" * (i % 5 == 0) for i in range(3000)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("bad", [None, 3, 2.5, ["a"]])
def test_bad_batch_item_is_named_with_its_index(tiny_tokenizer, threads, flat, bad):
    texts = ["ab"] * 40_000 if threads > 1 else ["ab"] * 3
    index = 30_001 if threads > 1 else 1  # threads: in a later block than the first
    texts[index] = bad
    with pytest.raises(InputError, match=rf"item {index} is .*not str or bytes") as info:
        tiny_tokenizer.encode_batch(texts, num_threads=threads, return_flat=flat)
    assert type(bad).__name__ in str(info.value)


def test_bad_item_after_bytes_items(tiny_tokenizer):
    with pytest.raises(InputError, match=r"item 2 is None"):
        tiny_tokenizer.encode_batch([b"ab", b"cd", None])


def test_lone_surrogate_names_the_item(tiny_tokenizer):
    with pytest.raises(InputError, match=r"item 1: .*surrogate"):
        tiny_tokenizer.encode_batch(["ab", "x\udc80y"])


@pytest.mark.parametrize("alpha", [np.float32(0.25), np.float64(0.25), np.float16(0.25), np.int64(1), np.int8(0),
                                   Fraction(1, 4), 1])
def test_numpy_and_other_real_alphas_are_accepted(tiny_tokenizer, alpha):
    fresh = Tokenizer(tiny_tokenizer.model)  # no sampling table cached for any alpha yet
    text = "abcd abcab 中文"
    got = fresh.encode(text, alpha=alpha, seed=5)
    assert got == fresh.encode(text, alpha=float(alpha), seed=5)
    assert fresh.tokenize(text, alpha=alpha, seed=5) == [fresh.id_to_piece(i) for i in got]
    assert fresh.encode_batch([text], alpha=alpha, seed=5) == fresh.encode_batch([text], alpha=float(alpha), seed=5)


def test_negative_numpy_alpha_is_deterministic(tiny_tokenizer):
    assert tiny_tokenizer.encode("abcab", alpha=np.float32(-1)) == tiny_tokenizer.encode("abcab")


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])
def test_non_finite_alpha_is_rejected(tiny_tokenizer, alpha):
    for call in (lambda: tiny_tokenizer.encode("ab", alpha=alpha), lambda: tiny_tokenizer.encode_batch(["ab"], alpha=alpha),
                 lambda: tiny_tokenizer.tokenize("ab", alpha=alpha)):
        with pytest.raises(InputError, match="alpha must be finite"):
            call()


@pytest.mark.parametrize("alpha", ["0.1", None, True, np.bool_(True), 1j, [0.1], np.array([0.1])])
def test_non_number_alpha_is_rejected(tiny_tokenizer, alpha):
    with pytest.raises(InputError, match="alpha must be a real number"):
        tiny_tokenizer.encode("ab", alpha=alpha)
    with pytest.raises(InputError, match="alpha must be a real number"):
        tiny_tokenizer.encode_batch(["ab"], alpha=alpha)


def _sample(tokenizer: Tokenizer, seed) -> list[list[int]]:
    return tokenizer.encode_batch(["abcab abcd aaaa 中文" * 4] * 20, alpha=0.5, seed=seed, num_threads=1)


def test_seeds_that_agree_modulo_2_63_give_different_samples(tiny_tokenizer):
    """Masking seeds to 63 bits made -1 and 2**63 - 1 (and 0 and 2**63) the same seed."""
    assert _sample(tiny_tokenizer, -1) != _sample(tiny_tokenizer, 2**63 - 1)
    assert _sample(tiny_tokenizer, 0) != _sample(tiny_tokenizer, 2**63)
    assert _sample(tiny_tokenizer, 5) != _sample(tiny_tokenizer, 5 + 2**64)


def test_any_int_seed_is_accepted_and_reproducible(tiny_tokenizer):
    for seed in (0, -1, 2**63, -(2**63) - 1, 2**200 + 7, -(3**150)):
        assert _sample(tiny_tokenizer, seed) == _sample(tiny_tokenizer, seed)


def test_numpy_integer_seed_is_the_same_seed_as_the_int(tiny_tokenizer):
    assert _sample(tiny_tokenizer, np.int64(-7)) == _sample(tiny_tokenizer, -7)
    assert _sample(tiny_tokenizer, np.uint64(2**64 - 1)) == _sample(tiny_tokenizer, 2**64 - 1)


def test_kernel_seeds_of_distinct_ints_are_distinct():
    seeds = set(range(-5000, 5000)) | {s * (2**k) for k in range(1, 300) for s in (1, -1, 3)}
    seeds |= {2**k - 1 for k in range(1, 300)} | {-(2**k) for k in range(1, 300)}
    mapped = {int(kernel_seed(s)) for s in seeds}
    assert len(mapped) == len(seeds)
    assert all(0 <= m < 2**64 for m in mapped)
    # nearby seeds differ in about half of their bits
    flips = [bin(int(kernel_seed(s)) ^ int(kernel_seed(s + 1))).count("1") for s in range(1000)]
    assert 28 < np.mean(flips) < 36


def test_generator_seed_draws_from_the_generator(tiny_tokenizer):
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert _sample(tiny_tokenizer, a) == _sample(tiny_tokenizer, b)
    assert _sample(tiny_tokenizer, a) != _sample(tiny_tokenizer, np.random.default_rng(3)), "the generator advanced"


@pytest.mark.parametrize("seed", [1.5, "3", True, np.bool_(False), [1]])
def test_bad_seed_is_rejected(tiny_tokenizer, seed):
    with pytest.raises(InputError, match="seed must be an int"):
        tiny_tokenizer.encode("ab", alpha=0.5, seed=seed)


@pytest.mark.parametrize("seed", [7, -(2**70)])
@pytest.mark.parametrize("alpha", [0.3, 80.0])
def test_same_seed_same_output_at_any_thread_count(tiny_tokenizer, seed, alpha):
    one = tiny_tokenizer.encode_batch(BIG_BATCH, alpha=alpha, seed=seed, num_threads=1, add_bos=True)
    for threads in (2, 3):
        assert tiny_tokenizer.encode_batch(BIG_BATCH, alpha=alpha, seed=seed, num_threads=threads, add_bos=True) == one
    flat, offsets = tiny_tokenizer.encode_batch(BIG_BATCH, alpha=alpha, seed=seed, num_threads=2, return_flat=True,
                                                add_bos=True)
    assert [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(BIG_BATCH))] == one


def test_deterministic_batch_at_any_thread_count_equals_single_calls(tiny_tokenizer):
    expected = [tiny_tokenizer.encode(t, add_eos=True) for t in BIG_BATCH]
    for threads in (1, 2, 3):
        assert tiny_tokenizer.encode_batch(BIG_BATCH, num_threads=threads, add_eos=True) == expected


def test_list_output_holds_plain_ints(tiny_tokenizer):
    ids = tiny_tokenizer.encode_batch(["abcd" * 30, "中文"])
    assert all(type(i) is int for doc in ids for i in doc)
    assert all(type(i) is int for i in tiny_tokenizer.encode("abcd" * 40))


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_thread_count_is_rejected(tiny_tokenizer, threads):
    with pytest.raises(InputError, match="num_threads"):
        tiny_tokenizer.encode_batch(["ab"], num_threads=threads)
