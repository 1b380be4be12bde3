"""Options that contradict each other or are malformed are usage errors (status 2) that name the
option; options that cannot have an effect on the given inputs say so in a ``note:``; messages
from the library name the command's options, not its parameters; usage lines show arguments as
click does (``MODEL``, ``[FILE]...``)."""

from __future__ import annotations

import pytest
from bytepiece import load_model
from bytepiece_cli.app import app
from bytepiece_cli.messages import in_cli_words


@pytest.fixture()
def docs(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("hello world\nsecond line\n", encoding="utf-8")
    return path


def _usage_error(result, message: str, command: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {message}; see 'bytepiece {command} -h'"


def _args(command: str, docs, tmp_path, tiny_model_file) -> list[str]:
    if command == "train":
        return ["train", str(docs), "-o", str(tmp_path / "m.model"), "-v", "300"]
    return ["encode", str(docs), "-m", str(tiny_model_file), "-f", "bin", "-o", str(tmp_path / "shards")]


@pytest.mark.parametrize("command, workers", [("train", "--workers"), ("train", "-w"), ("encode", "--threads")])
@pytest.mark.parametrize("cluster", ["local:2", "tcp://scheduler:8786"])
def test_local_threads_with_a_cluster_are_a_usage_error(runner, docs, tmp_path, tiny_model_file, command, workers,
                                                        cluster):
    result = runner.invoke(app, [*_args(command, docs, tmp_path, tiny_model_file), workers, "1", "--cluster", cluster])
    option = "--threads" if command == "encode" else "--workers"
    count = " (local:N starts N of them)" if cluster.startswith("local:") else ""
    _usage_error(result, f"{option} does not apply with --cluster {cluster}: the cluster's own workers do the "
                         f"work{count}; drop {option}, or drop --cluster to run on local threads", command)
    assert not list(tmp_path.glob("m.model*")) and not list(tmp_path.glob("shards*"))


@pytest.mark.parametrize("command", ["train", "encode"])
def test_a_cluster_without_workers_is_a_usage_error(runner, docs, tmp_path, tiny_model_file, command):
    result = runner.invoke(app, [*_args(command, docs, tmp_path, tiny_model_file), "--cluster", "local:0"])
    _usage_error(result, "--cluster local:N needs a positive number of worker processes, got 'local:0'", command)


@pytest.mark.parametrize("command", ["train", "encode"])
def test_a_malformed_cluster_address_is_a_usage_error(runner, docs, tmp_path, tiny_model_file, command):
    pytest.importorskip("distributed")
    result = runner.invoke(app, [*_args(command, docs, tmp_path, tiny_model_file), "--cluster", "bogus"])
    _usage_error(result, "--cluster 'bogus' is not a Dask scheduler address (missing port number in address "
                         "'bogus'); give tcp://HOST:PORT or local:N", command)


def test_a_file_as_tmp_dir_is_named_as_not_a_directory(runner, docs, tmp_path):
    result = runner.invoke(app, ["train", str(docs), "-o", str(tmp_path / "m.model"), "-v", "300",
                                 "--tmp-dir", str(docs)])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"error: --tmp-dir {docs} is not a directory; pass a directory to spill counts into"
    assert not (tmp_path / "m.model").exists()


def test_train_names_the_order_option(runner, docs, tmp_path):
    result = runner.invoke(app, ["train", str(docs), "-o", str(tmp_path / "m.model"), "--order", "0"])
    _usage_error(result, "--order must be an integer between 1 and 7, got 0", "train")


@pytest.mark.parametrize("args, message", [
    (["--heldout-bytes", "0"], "--heldout-bytes must be an integer >= 1, got 0"),
    (["--cuts", "-3"], "--cuts must be an integer >= 0, got -3"),
    (["--workers", "0"], "--workers must be an integer >= 1, got 0"),
    (["--passes", "0"], "--passes must be an integer >= 1, got 0"),
    (["--order", "11"], "--order must be an integer from 1 to 10, got 11"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["--generic-cuts", "-1"], "--generic-cuts must be an integer >= 0, got -1"),
    (["-v", "100"], "--vocab-size must be an integer >= 259, got 100"),
])
def test_eval_run_names_its_options(runner, docs, args, message):
    result = runner.invoke(app, ["eval", "run", "-t", str(docs), "-H", str(docs), "-v", "300", *args])
    _usage_error(result, message, "eval run")


def test_ordinary_words_become_options_only_as_a_message_s_subject():
    subjects = {"order": "--order", "workers": "--workers"}
    assert in_cli_words("order must be an integer", subjects) == "--order must be an integer"
    assert in_cli_words("pieces are merged in corpus order", subjects) == "pieces are merged in corpus order"
    assert in_cli_words("the workers of the Dask cluster left", subjects) == "the workers of the Dask cluster left"
    assert in_cli_words("orders must be", subjects) == "orders must be"


def test_usage_lines_show_required_arguments_plainly(runner):
    lines = {}
    for path in (["export"], ["import"], ["eval", "report"], ["eval", "compression"], ["encode"], ["inspect"]):
        result = runner.invoke(app, [*path, "-h"])
        assert result.exit_code == 0, result.output
        lines[" ".join(path)] = next(line.strip() for line in result.stdout.splitlines() if "Usage:" in line)
    assert lines == {
        "export": "Usage: bytepiece export [OPTIONS] MODEL",
        "import": "Usage: bytepiece import [OPTIONS] SPM_MODEL",
        "eval report": "Usage: bytepiece eval report [OPTIONS] RESULTS",
        "eval compression": "Usage: bytepiece eval compression [OPTIONS] FILE...",
        "encode": "Usage: bytepiece encode [OPTIONS] [FILE]...",
        "inspect": "Usage: bytepiece inspect [OPTIONS] [MODEL]",
    }


@pytest.mark.parametrize("command", ["train", "encode"])
def test_a_parquet_column_without_parquet_inputs_is_noted(runner, docs, tmp_path, tiny_model_file, command):
    args = (["train", str(docs), "-o", str(tmp_path / "m.model"), "-v", "300"] if command == "train"
            else ["encode", str(docs), "-m", str(tiny_model_file)])
    result = runner.invoke(app, [*args, "--parquet-column", "body"])
    assert result.exit_code == 0, result.output
    assert "note: --parquet-column has no effect: no input is a Parquet file\n" in result.stderr


def test_a_parquet_column_with_a_parquet_input_is_not_noted(runner, docs, tmp_path, tiny_model_file):
    pa = pytest.importorskip("pyarrow")
    from pyarrow import parquet

    table = tmp_path / "t.parquet"
    parquet.write_table(pa.table({"body": ["hello there", "more text"]}), table)
    result = runner.invoke(app, ["encode", str(table), str(docs), "-m", str(tiny_model_file), "--parquet-column", "body"])
    assert result.exit_code == 0, result.output
    assert "--parquet-column" not in result.stderr


def test_allow_special_without_special_tokens_is_noted(runner, docs, tmp_path, tiny_model_file):
    result = runner.invoke(app, ["encode", str(docs), "-m", str(tiny_model_file), "--allow-special"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: --allow-special has no effect: the model has no special tokens and no "
                             "--special-token is given\n")
    given = runner.invoke(app, ["encode", str(docs), "-m", str(tiny_model_file), "--allow-special",
                                "--special-token", "<x>"])
    assert given.exit_code == 0 and given.stderr == "", given.output
    with_specials = tmp_path / "specials.model"
    load_model(tiny_model_file).with_special_tokens(["<x>"]).save(with_specials)
    own = runner.invoke(app, ["encode", str(docs), "-m", str(with_specials), "--allow-special"])
    assert own.exit_code == 0 and own.stderr == "", own.output


def test_export_raw_to_sentencepiece_says_what_it_does(runner, tmp_path, tiny_model_file):
    """Audit: ``export --raw --to sentencepiece`` was accepted and did nothing to the file; it
    changes only what ``--verify`` compares, and a note says so when there is nothing to verify."""
    out = tmp_path / "x.model"
    result = runner.invoke(app, ["export", str(tiny_model_file), "--to", "sentencepiece", "-o", str(out), "--raw"])
    assert result.exit_code == 0 and out.is_file()
    assert result.stderr.splitlines()[0] == ("note: --raw does not change a sentencepiece export (it has no NFC step "
                                             "to leave out); with --verify it compares ids on the texts as they are "
                                             "instead of NFC-normalized")
    plain = tmp_path / "y.model"
    assert runner.invoke(app, ["export", str(tiny_model_file), "--to", "sentencepiece", "-o", str(plain)]).exit_code == 0
    assert plain.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("cluster", ["local:2", "tcp://127.0.0.1:8786"])
def test_the_library_refuses_a_worker_count_beside_a_cluster_as_the_command_does(tmp_path, cluster):
    """Audit: ``Trainer(cluster="local:2", workers=2)`` and ``encode_corpus(..., cluster=...,
    workers=2)`` ran with the count ignored; the rule is engine.make's, before any work."""
    from bytepiece import Trainer, encode_corpus
    from bytepiece.errors import InputError

    with pytest.raises(InputError, match=r"workers \(CLI: --workers\) does not apply with cluster="):
        Trainer(cluster=cluster, workers=2)
    with pytest.raises(InputError, match=r"workers \(CLI: --threads\) does not apply with cluster="):
        encode_corpus(["a"], tmp_path / "missing.model", tmp_path / "c", cluster=cluster, workers=2)
    Trainer(cluster="local", workers=2)  # "local" without a count: workers is the number of processes
