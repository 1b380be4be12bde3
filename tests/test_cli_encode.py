"""``bytepiece encode / decode / inspect`` through typer's CliRunner (no real terminal)."""

from __future__ import annotations

import numpy as np
import pytest

from bytepiece_cli.app import app

TEXT = "abcd 中文\nsecond line  ab\n\nlast"


@pytest.fixture()
def model(tiny_model_file):
    return tiny_model_file


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(TEXT + "\n", encoding="utf-8")
    return path


def _ids_lines(output: str) -> list[list[int]]:
    return [[int(x) for x in line.split()] for line in output.rstrip("\n").split("\n")]


def test_encode_file_matches_library(runner, model, corpus, tiny_tokenizer):
    result = runner.invoke(app, ["encode", str(corpus), "-m", str(model)])
    assert result.exit_code == 0, result.output
    assert _ids_lines(result.stdout) == [tiny_tokenizer.encode(line) for line in TEXT.split("\n")]


def test_encode_stdin_and_output_file(runner, model, tmp_path, tiny_tokenizer):
    out = tmp_path / "ids.txt"
    result = runner.invoke(app, ["encode", "-m", str(model), "-o", str(out), "--add-eos"], input="ab\n中文\n")
    assert result.exit_code == 0, result.output
    assert _ids_lines(out.read_text()) == [tiny_tokenizer.encode("ab") + [2], tiny_tokenizer.encode("中文") + [2]]


def test_encode_pieces_format(runner, model):
    result = runner.invoke(app, ["encode", "-m", str(model), "--format", "pieces"], input="abcd ab\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "abcd ▁ ab\n"


def test_sampling_is_reproducible_with_seed(runner, model, tmp_path):
    corpus = tmp_path / "ambiguous.txt"
    corpus.write_text("abcabcabcdab\n" * 20)
    args = ["encode", str(corpus), "-m", str(model), "--sample", "alpha=0"]
    a = runner.invoke(app, args + ["--seed", "3"]).stdout
    b = runner.invoke(app, args + ["--seed", "3"]).stdout
    c = runner.invoke(app, ["encode", str(corpus), "-m", str(model), "--sample", "alpha=0,seed=3"]).stdout
    assert a == b == c
    assert a != runner.invoke(app, args + ["--seed", "4"]).stdout


def test_npy_format(runner, model, corpus, tmp_path, tiny_tokenizer):
    out = tmp_path / "ids.npy"
    result = runner.invoke(app, ["encode", str(corpus), "-m", str(model), "-f", "npy", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ids = np.load(out)
    offsets = np.load(tmp_path / "ids.offsets.npy")
    expected = [tiny_tokenizer.encode(line) for line in TEXT.split("\n")]
    assert ids.dtype == np.uint16
    assert [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(expected))] == expected


def test_decode_roundtrip(runner, model, corpus, tmp_path):
    ids = tmp_path / "ids.txt"
    assert runner.invoke(app, ["encode", str(corpus), "-m", str(model), "-o", str(ids)]).exit_code == 0
    result = runner.invoke(app, ["decode", str(ids), "-m", str(model)])
    assert result.exit_code == 0, result.output
    assert result.stdout == TEXT + "\n"


@pytest.mark.parametrize(
    "args, input, message, code",
    [
        (["encode", "-m", "{missing}"], "x\n", "does not exist", 1),
        (["encode", "-m", "{corrupt}"], "x\n", "not a JSON model", 1),
        (["encode", "{missing}", "-m", "{model}"], None, "does not exist", 1),
        (["encode", "{tmp}", "-m", "{model}"], None, "is a directory", 1),
        (["encode", "-m", "{model}", "-f", "npy"], "x\n", "-o", 2),
        (["encode", "-m", "{model}", "-f", "xml"], "x\n", "--format", 2),
        (["decode", "-m", "{model}"], "1 2 x\n", "line 1", 1),
        (["decode", "-m", "{model}"], "5\n99999999\n", "line 2", 1),
        (["inspect", "{corrupt}"], None, "not a JSON model", 1),
    ],
)
def test_errors_are_one_line_and_exit_nonzero(runner, model, tmp_path, args, input, message, code):
    """Failures while running exit 1; a command line that cannot run as written exits 2."""
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_text("{oops")
    paths = {"missing": tmp_path / "missing", "corrupt": corrupt, "model": model, "tmp": tmp_path}
    result = runner.invoke(app, [a.format(**paths) for a in args], input=input)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["alpha=abc", "beta=1", "seed=3", "alpha=-1", "alpha=inf", "alpha=0.1,seed=x",
                                   "alpha=1_0", "alpha=nan", "alpha=0.1,alpha=0.2", "0.1,alpha=0.2",
                                   "alpha=0.1,seed=1,seed=2", "alpha=0.1,seed=+5"])
def test_malformed_sample_value(runner, model, value):
    result = runner.invoke(app, ["encode", "-m", str(model), "--sample", value], input="ab\n")
    assert result.exit_code == 2
    assert "--sample" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_inspect(runner, model):
    result = runner.invoke(app, ["inspect", str(model), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "vocabulary size" in result.stdout
    assert "268" in result.stdout  # 256 bytes + 9 multi-byte pieces + 3 special
    assert "most frequent" in result.stdout


def test_version_and_help(runner):
    assert runner.invoke(app, ["--version"]).stdout.startswith("bytepiece ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "encode" in result.stdout


@pytest.mark.parametrize("fmt, name", [("npy", "ids.npy"), ("bin", "corpus.bin"), ("ids", "ids.txt")])
def test_decode_reads_every_output_of_encode(runner, model, corpus, tmp_path, fmt, name):
    out = tmp_path / name
    assert runner.invoke(app, ["encode", str(corpus), "-m", str(model), "-f", fmt, "-o", str(out)]).exit_code == 0
    result = runner.invoke(app, ["decode", str(out), "-m", str(model)])
    assert result.exit_code == 0, result.output
    assert result.stdout == TEXT + "\n"


def test_decode_reads_a_sharded_corpus_and_refuses_another_model(runner, model, corpus, tmp_path):
    from bytepiece import Tokenizer

    prefix = tmp_path / "shards" / "corpus"
    prefix.parent.mkdir()
    done = runner.invoke(app, ["encode", str(corpus), "-m", str(model), "-f", "bin", "-o", str(prefix),
                               "--shard-size", "16"])
    assert done.exit_code == 0, done.output
    assert len(list(prefix.parent.glob("corpus-*.bin"))) > 1  # documents spread over several shards
    manifest = prefix.parent / "corpus.manifest.json"
    result = runner.invoke(app, ["decode", str(manifest), "-m", str(model)])
    assert result.exit_code == 0, result.output
    assert result.stdout == TEXT + "\n"
    other = tmp_path / "other.model"
    Tokenizer.from_counts({bytes([b]): 1 for b in range(256)} | {b"zz": 5}).save(other)
    refused = runner.invoke(app, ["decode", str(manifest), "-m", str(other)])
    assert refused.exit_code == 1 and "encoded with another model" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_decode_names_the_document_with_a_bad_id(runner, model, tmp_path, tiny_tokenizer):
    from bytepiece.tokens.npyfile import NpyWriter

    out = tmp_path / "ids.npy"
    with NpyWriter(out, vocab_size=70_000) as writer:  # ids the tiny model does not have
        writer.write(np.array([5, 6, 60_000]), np.array([0, 2, 3]))
    result = runner.invoke(app, ["decode", str(out), "-m", str(model)])
    assert result.exit_code == 1
    assert "document 1 of" in result.stderr and len(result.stderr.strip().splitlines()) == 1
