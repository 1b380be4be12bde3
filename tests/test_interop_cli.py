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
