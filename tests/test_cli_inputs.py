"""Corpus inputs on the command line (issues 18 and 19): the same format rule for ``train``,
``encode``, ``Trainer`` and stdin; pipes, empty and closed standard streams; messages in the
command line's words. Real processes where the shell matters (``<(...)``, ``<&-``, ``>&-``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from bytepiece.training import Trainer
from bytepiece_cli.app import app


def _one_line_error(result, message: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def _shell(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``script`` run by bash with ``$BYTEPIECE`` the command line of this interpreter's bytepiece."""
    env = {**os.environ, "BYTEPIECE": f"{sys.executable} -m bytepiece", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(["bash", "-c", script, "bash", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("abcd 中文\nsecond line ab\n", encoding="utf-8")
    return path


# -- which inputs are JSON Lines -----------------------------------------------------------------

def test_train_reads_a_name_without_extension_as_text_like_the_library(runner, tmp_path):
    """`train plain_noext` used to fail with "line 1 is not valid JSON"; it gives the model that
    Trainer().train gives, and its note on invalid UTF-8 names the command line's flag."""
    from test_train import _as_dict, _texts

    path = tmp_path / "plain_noext"
    path.write_bytes("".join(_texts(300)).encode() + b"one invalid \xff byte\n")
    out = tmp_path / "x.model"
    result = runner.invoke(app, ["train", str(path), "-o", str(out), "-v", "300", "-w", "1"])
    assert result.exit_code == 0, result.output
    assert "to stop at the first: --strict-utf8" in result.stderr and "errors='strict'" not in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (library,) = Trainer(max_vocab_size=300, workers=1, progress=False).train(str(path))
    from bytepiece import load_model

    assert _as_dict(load_model(out)) == _as_dict(library)


def test_encode_reads_stdin_as_json_lines_when_a_field_is_given(runner, tiny_model_file, tiny_tokenizer):
    records = '{"text": "ab"}\n{"text": "中文"}\n'
    result = runner.invoke(app, ["encode", "-m", str(tiny_model_file), "--jsonl-field", "text"], input=records)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [" ".join(map(str, tiny_tokenizer.encode(t))) for t in ("ab", "中文")]
    plain = runner.invoke(app, ["encode", "-m", str(tiny_model_file)], input=records)
    assert plain.stdout.splitlines()[0] == " ".join(map(str, tiny_tokenizer.encode('{"text": "ab"}')))


@pytest.mark.parametrize("command", ["train", "encode"])
@pytest.mark.parametrize("option", ["--jsonl-field", "--parquet-column"])
def test_empty_field_name_is_a_usage_error(runner, corpus, tiny_model_file, tmp_path, command, option):
    extra = ["-o", str(tmp_path / "m.model")] if command == "train" else ["-m", str(tiny_model_file)]
    result = runner.invoke(app, [command, str(corpus), option, "", *extra])
    _one_line_error(result, "name is empty", 2)
    assert not (tmp_path / "m.model").exists()


# -- pipes, files without a size, links ----------------------------------------------------------

def test_encode_reads_a_process_substitution(tiny_model_file, corpus):
    done = _shell('$BYTEPIECE encode -m "$1" <(gzip -c "$2")', str(tiny_model_file), str(corpus))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2


def test_train_copies_a_pipe_to_the_tmp_dir(tmp_path):
    from test_train import _texts

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(_texts(300)), encoding="utf-8")
    spool = tmp_path / "spool"
    spool.mkdir()
    done = _shell('$BYTEPIECE train <(cat "$1") -o "$2" -v 300 -w 1 --tmp-dir "$3"', str(corpus),
                  str(tmp_path / "p.model"), str(spool), timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.model").is_file() and not list(spool.iterdir())


def test_encode_reads_a_file_that_reports_no_size(runner, tiny_model_file):
    path = Path("/proc/self/mounts")
    if not path.exists() or path.stat().st_size != 0:
        pytest.skip("needs Linux /proc files that report size 0")
    result = runner.invoke(app, ["encode", str(path), "-m", str(tiny_model_file)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) >= 1


def test_symbolic_link_loop_is_named(runner, tiny_model_file, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _one_line_error(runner.invoke(app, ["encode", str(tmp_path / "a"), "-m", str(tiny_model_file)]),
                    "symbolic link loop")


# -- empty and closed standard streams -----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["ids", "npy", "bin"])
def test_empty_input_is_zero_documents_for_a_file_and_stdin_alike(runner, tiny_model_file, tmp_path, fmt):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for n, (args, stdin) in enumerate([([str(empty)], None), ([], ""), (["-"], "")]):
        out = [] if fmt == "ids" else ["-f", fmt, "-o", str(tmp_path / f"o{n}.{fmt}")]
        result = runner.invoke(app, ["encode", *args, "-m", str(tiny_model_file), *out], input=stdin)
        assert result.exit_code == 0, result.output
        assert "note: the input holds no documents" in result.stderr
        assert result.stdout == ""


def test_train_on_empty_stdin_is_an_empty_corpus(runner, tmp_path):
    result = runner.invoke(app, ["train", "-", "-o", str(tmp_path / "m.model"), "-v", "300"], input="")
    _one_line_error(result, "the corpus is empty")


def test_train_without_corpus_waits_a_moment_for_a_pipe_and_says_when_it_uses_the_sample(corpus, tmp_path):
    """A producer that starts writing after half a second is the corpus; a pipe with nothing on
    it for a second leaves the sample corpus, with a note saying so and how to wait."""
    late = _shell('(sleep 0.5; cat "$1") | $BYTEPIECE train -o "$2" -v 270', str(corpus), str(tmp_path / "a.model"))
    assert late.returncode == 0, late.stderr
    assert "<stdin>" in late.stdout and "sample corpus" not in late.stdout
    # the producer writes only once train has finished on the sample (a fixed sleep raced with
    # the interpreter's start on a loaded machine); the timeout catches a train that waits for it
    idle = _shell('(until [ -e "$2" ]; do sleep 0.1; done; cat "$1") | $BYTEPIECE train -o "$2" -v 270',
                  str(corpus), str(tmp_path / "b.model"), timeout=60)
    assert idle.returncode == 0, idle.stderr
    assert "sample corpus" in idle.stdout and "note: no CORPUS given" in idle.stderr and "pass '-'" in idle.stderr


def test_closed_standard_input_is_one_line(tiny_model_file):
    done = _shell('$BYTEPIECE encode -m "$1" <&-', str(tiny_model_file))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: standard input is closed"


def test_closed_standard_output_is_one_line(tiny_model_file, corpus, tmp_path):
    done = _shell('$BYTEPIECE encode "$2" -m "$1" >&-', str(tiny_model_file), str(corpus))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: cannot write to standard output: it is closed"
    written = _shell('$BYTEPIECE encode "$2" -m "$1" -o "$3" >&-', str(tiny_model_file), str(corpus),
                     str(tmp_path / "ids.txt"))
    assert written.returncode == 0, written.stderr
    assert len((tmp_path / "ids.txt").read_text().splitlines()) == 2
    train = _shell('$BYTEPIECE train "$1" -o "$2" -v 300 >&-', str(corpus), str(tmp_path / "m.model"))
    assert train.returncode == 1 and train.stderr.strip() == "error: cannot write to standard output: it is closed"
    assert not (tmp_path / "m.model").exists()  # refused before the work, whose summary goes there


# -- messages in the command line's words --------------------------------------------------------

def test_existing_corpus_message_names_the_option(runner, tiny_model_file, corpus, tmp_path):
    """The library says ``overwrite=True (CLI: --force)``; the command line says ``--force``."""
    args = ["encode", str(corpus), "-m", str(tiny_model_file), "-f", "bin", "-o", str(tmp_path / "corpus")]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    _one_line_error(result, "pass --force to replace it")
    assert "overwrite=True" not in result.stderr


def test_missing_field_message_names_the_option(runner, tiny_model_file, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"body": "a"}\n', encoding="utf-8")
    result = runner.invoke(app, ["encode", str(path), "-m", str(tiny_model_file)])
    _one_line_error(result, "pick the right field with --jsonl-field or fix the line")
