"""``bytepiece export`` / ``bytepiece import`` through typer's CliRunner."""

from __future__ import annotations

import sys

import pytest

from bytepiece import load_model
from bytepiece_cli.app import app


@pytest.fixture()
def model(tiny_model_file):
    return tiny_model_file


@pytest.mark.parametrize("style", ["byte_fallback", "byte_level"])
def test_export_import_roundtrip(runner, model, tmp_path, tiny_tokenizer, style):
    spm_path = tmp_path / "tiny.spm.model"
    result = runner.invoke(app, ["export", str(model), "--to", "sentencepiece", "-o", str(spm_path), "--style", style])
    assert result.exit_code == 0, result.output
    assert "same ids" in result.stdout
    back = tmp_path / "back.model"
    result = runner.invoke(app, ["import", str(spm_path), "-o", str(back)])
    assert result.exit_code == 0, result.output
    restored = load_model(back)
    assert restored.pieces == tiny_tokenizer.model.pieces
    assert restored.counts.tolist() == tiny_tokenizer.model.counts.tolist()


def test_export_hf_file_and_directory(runner, model, tmp_path, tiny_tokenizer):
    tokenizers = pytest.importorskip("tokenizers")
    out = tmp_path / "tok.json"
    result = runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(out), "--verify", "-"])
    assert result.exit_code == 0, result.output
    assert "100.00%" in result.stdout
    directory = tmp_path / "hf"
    directory.mkdir()
    assert runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(directory)]).exit_code == 0
    tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    assert tok.encode("abcd 中文").ids == tiny_tokenizer.encode("abcd 中文")
    assert (directory / "tokenizer_config.json").is_file()


def test_export_verify_with_text_file(runner, model, tmp_path):
    pytest.importorskip("sentencepiece")
    texts = tmp_path / "texts.txt"
    texts.write_text("abcd\n中文 ab\ncd cd\n", encoding="utf-8")
    out = tmp_path / "t.model"
    result = runner.invoke(app, ["export", str(model), "-t", "sentencepiece", "-o", str(out), "--verify", str(texts)])
    assert result.exit_code == 0, result.output
    assert "3 of 3 texts" in result.stdout


def test_export_force_overwrites(runner, model, tmp_path):
    out = tmp_path / "t.model"
    out.write_text("old")
    assert runner.invoke(app, ["export", str(model), "--to", "sentencepiece", "-o", str(out)]).exit_code == 1
    assert out.read_text() == "old"
    assert runner.invoke(app, ["export", str(model), "--to", "sentencepiece", "-o", str(out), "--force"]).exit_code == 0
    assert out.read_bytes() != b"old"


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["export", "{missing}", "--to", "hf", "-o", "{out}"], "does not exist", 1),
        (["export", "{corrupt}", "--to", "hf", "-o", "{out}"], "not a JSON model", 1),
        (["export", "{model}", "--to", "fairseq", "-o", "{out}"], "'fairseq' is not one of 'sentencepiece', 'hf'", 2),
        (["export", "{model}", "--to", "hf", "--style", "wordpiece", "-o", "{out}"], "--style", 2),
        (["export", "{model}", "--to", "hf", "-o", "{existing}"], "already exists", 1),
        (["export", "{model}", "--to", "hf", "-o", "{nodir}/x/t.json"], "does not exist", 1),
        (["import", "{missing}", "-o", "{out}"], "no such file", 1),
        (["import", "{tmp}", "-o", "{out}"], "is a directory", 1),
        (["import", "{corrupt}", "-o", "{out}"], "sentencepiece", 1),
        (["import", "{spm}", "-o", "{existing}"], "already exists", 1),
    ],
)
def test_errors_are_one_line(runner, model, tmp_path, tiny_tokenizer, args, message, code):
    """Exit status 1 for a failure, 2 for a command line that cannot run as written."""
    from bytepiece.interop.sentencepiece import export_sentencepiece

    corrupt = tmp_path / "corrupt.model"
    corrupt.write_text("{oops")
    existing = tmp_path / "existing.json"
    existing.write_text("keep")
    spm = export_sentencepiece(tiny_tokenizer, tmp_path / "ok.spm.model")
    paths = {"missing": tmp_path / "missing", "corrupt": corrupt, "model": model, "tmp": tmp_path,
             "out": tmp_path / "out.model", "existing": existing, "spm": spm, "nodir": tmp_path / "nodir"}
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert existing.read_text() == "keep"
    assert not (tmp_path / "out.model").exists()


def test_verify_without_the_extra_names_it(runner, model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    result = runner.invoke(app, ["export", str(model), "--to", "sentencepiece", "-o", str(tmp_path / "t.model"),
                                 "--verify", "-"])
    assert result.exit_code == 1
    assert 'bytepiece-tk[sentencepiece]' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.model").exists(), "an export that cannot be verified must not be written"


def _verify_inputs(tmp_path):
    """--verify inputs that must be refused: (path, the start of the one error line)."""
    import gzip
    import random

    missing = tmp_path / "nosuch.txt"
    directory = tmp_path / "somedir"
    directory.mkdir()
    whole = gzip.compress("".join(f"line {i} of some text\n" for i in range(2000)).encode())
    truncated = tmp_path / "trunc.txt.gz"
    truncated.write_bytes(whole[:300])
    binary = tmp_path / "rnd.txt"
    binary.write_bytes(random.Random(5).randbytes(5000))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    return {
        "missing": (missing, f"error: --verify file {missing} does not exist"),
        "directory": (directory, f"error: --verify {directory} is a directory; give a text file (a document per line)"),
        "truncated": (truncated, f"error: {truncated}: corrupt or truncated gzip data ("),
        "binary": (binary, f"error: {binary} looks binary ("),
        "empty": (empty, f"error: --verify {empty} holds no text; give a file with at least one line of text"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "binary", "empty"])
@pytest.mark.parametrize("target, name", [("hf", "v.json"), ("hf", "hfdir"), ("sentencepiece", "v.model")])
def test_export_verify_input_is_checked_before_anything_is_written(runner, model, tmp_path, case, target, name):
    pytest.importorskip("tokenizers" if target == "hf" else "sentencepiece")
    path, message = _verify_inputs(tmp_path)[case]
    out = tmp_path / name
    result = runner.invoke(app, ["export", str(model), "--to", target, "-o", str(out), "--verify", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists(), "a --verify that fails must leave no export behind"
    existing = tmp_path / "existing.json"
    existing.write_text("keep")
    result = runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(existing), "--force", "--verify", str(path)])
    assert result.exit_code == 1 and existing.read_text() == "keep"


@pytest.mark.parametrize("case", ["truncated", "binary"])
def test_export_verify_refuses_what_encode_refuses_with_its_message(runner, model, tmp_path, case):
    pytest.importorskip("tokenizers")
    path, _ = _verify_inputs(tmp_path)[case]
    encoded = runner.invoke(app, ["encode", str(path), "-m", str(model), "-o", str(tmp_path / "t.bin")])
    exported = runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(tmp_path / "v.json"),
                                   "--verify", str(path)])
    assert encoded.exit_code == exported.exit_code == 1
    assert exported.stderr == encoded.stderr
    assert not (tmp_path / "v.json").exists()


def test_export_verify_reads_documents_as_encode_does(runner, model, tmp_path):
    """A compressed file is decompressed, and its documents are its lines, as for encode."""
    import gzip

    pytest.importorskip("tokenizers")
    texts = tmp_path / "texts.txt.gz"
    texts.write_bytes(gzip.compress("abcd\n中文 ab\r\ncd cd\n\n".encode() + "".join(f"{i} dc ba\n" for i in range(33)).encode()))
    out = tmp_path / "v.json"
    result = runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(out), "--verify", str(texts)])
    assert result.exit_code == 0, result.output
    assert "37 of 37 texts encode to the same ids (100.00%)" in result.stdout
    assert out.is_file()


@pytest.mark.parametrize("target", ["hf", "sentencepiece"])
def test_export_model_with_no_texts_to_verify_writes_nothing(tiny_tokenizer, tmp_path, target):
    from bytepiece.errors import InputError
    from bytepiece.interop.export import export_model

    pytest.importorskip("tokenizers" if target == "hf" else "sentencepiece")
    out = tmp_path / "out.file"
    with pytest.raises(InputError, match="no texts to compare the export on; give at least one text"):
        export_model(tiny_tokenizer, out, target=target, verify=[])
    assert not out.exists()
    report = export_model(tiny_tokenizer, out, target=target, verify=["abcd", "中文"])
    assert report.verified is not None and (report.verified.texts, report.verified.exact) == (2, 2)
    assert out.is_file()


def test_agreement_with_no_texts_is_an_error(tiny_tokenizer, tmp_path):
    from bytepiece.errors import InputError
    from bytepiece.interop.check import agreement

    pytest.importorskip("tokenizers")
    path = tiny_tokenizer.to_hf(tmp_path / "t.json")
    with pytest.raises(InputError, match="no texts to compare"):
        agreement(tiny_tokenizer, path, "hf", [])
