"""Integer options out of range: one clear error naming the option and its limit before any work,
never an overflow deep in a kernel; more workers than the machine can use are capped with a note."""

from __future__ import annotations

import pytest

from bytepiece import Trainer
from bytepiece.errors import InputError

HUGE = 99999999999999999999  # above 2**64


@pytest.mark.parametrize("option, value, message", [
    ("min_count", HUGE, r"min_count must be at most 9223372036854775807 \(counts and lengths are 64-bit integers\), "
                        r"got 99999999999999999999"),
    ("max_piece_length", HUGE, r"max_piece_length must be at most 9223372036854775807"),
    ("max_vocab_size", HUGE, r"max_vocab_size must be at most 4294967296 \(ids are at most 32-bit in token files\)"),
    ("max_vocab_size", [1000, (1 << 32) + 1], r"max_vocab_size must be at most 4294967296"),
    ("order", HUGE, r"order must be an integer between 1 and 7"),
    ("batch_bytes", HUGE, r"batch_bytes must be at most 9223372036854775807"),
])
def test_trainer_refuses_integers_beyond_their_range(option, value, message):
    with pytest.raises(InputError, match=message):
        Trainer(**{option: value})


def test_the_largest_values_are_accepted():
    trainer = Trainer(min_count=(1 << 63) - 1, max_vocab_size=1 << 32, max_piece_length=(1 << 63) - 1, workers=HUGE)
    assert trainer.min_count == (1 << 63) - 1 and trainer.max_vocab_size == [1 << 32]


def test_a_huge_min_count_trains_instead_of_overflowing(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc abd abe\n" * 50, encoding="utf-8")
    model = Trainer(max_vocab_size=259, min_count=(1 << 63) - 1, workers=1, progress=False).train(str(corpus))[0]
    assert model.vocab_size == 259  # the bytes only: no piece is counted that often


@pytest.mark.parametrize("args, message", [
    (["--min-count", str(HUGE)], "--min-count must be at most 9223372036854775807"),
    (["--max-piece-length", str(HUGE)], "--max-piece-length must be at most 9223372036854775807"),
    (["-v", str(HUGE)], "--vocab-size must be at most 4294967296"),
])
def test_cli_out_of_range_options_are_usage_errors(runner, tmp_path, args, message):
    from bytepiece_cli.app import app

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n" * 20, encoding="utf-8")
    result = runner.invoke(app, ["train", str(corpus), "-o", str(tmp_path / "m.model"), *args])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert message in result.output and "unexpected" not in result.output
    assert not (tmp_path / "m.model").exists()


def test_cli_caps_workers_with_a_note(runner, tmp_path):
    from bytepiece.engine.local import MAX_WORKERS_PER_CPU, default_workers
    from bytepiece_cli.app import app

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: abcd ab cafe\n" for i in range(200)), encoding="utf-8")
    result = runner.invoke(app, ["train", str(corpus), "-o", str(tmp_path / "m.model"), "-v", "262",
                                 "--workers", "100000"])
    assert result.exit_code == 0, result.output
    cap = MAX_WORKERS_PER_CPU * default_workers()
    assert (f"note: 100000 workers asked for, but more than {MAX_WORKERS_PER_CPU} per CPU ({default_workers()} "
            f"available) would only cost memory; using {cap}") in result.output
    assert f"local, {cap} workers" in result.output  # the plan line of the summary
    assert "smallest budget" not in result.output
