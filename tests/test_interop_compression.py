"""``bytepiece eval compression`` gives every tokenizer the same documents: a model and its own
HF export, which give the same ids, score the same bytes per token."""

from __future__ import annotations

import json

import pytest

from bytepiece import Tokenizer
from bytepiece.evaluation.adapters import CountingTokenizer, compression_rows, documents
from bytepiece.interop.hf import export_hf
from bytepiece.training import Trainer
from bytepiece_cli.app import app
from bytepiece_data import SAMPLE_CORPUS, data_file


@pytest.fixture(scope="module")
def sample() -> str:
    return data_file(SAMPLE_CORPUS).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, sample):
    """A model trained on Python code and prose with blank lines: it has pieces that end in a
    run of newlines after other text (``)\\n\\n``), which a line-by-line split cuts apart."""
    (model,) = Trainer(max_vocab_size=800, progress=False).train([sample[:300_000]])
    assert any(p.endswith(b"\n\n") and p.strip(b"\n") for p in model.pieces)
    path = tmp_path_factory.mktemp("model") / "small.model"
    model.save(path)
    return path


def test_documents_cut_after_newline_runs():
    assert documents("a\n\n\nb\nc") == ["a\n\n\n", "b\n", "c"]
    assert documents("\n\nx\n") == ["\n\n", "x\n"]
    assert documents("") == []
    assert "".join(documents("α\r\n\n β  \n")) == "α\r\n\n β  \n"


def test_every_tokenizer_gets_the_same_documents():
    seen: list[list[str]] = []

    def recorder(name: str) -> CountingTokenizer:
        return CountingTokenizer(name, "stub", 10, lambda docs: seen.append(docs) or len(docs))

    text = "one\n\n\ntwo\nthree"
    rows = compression_rows([recorder("a"), recorder("b")], [("t", text)])
    assert seen[0] == seen[1] == documents(text)
    assert rows[0]["files"] == rows[1]["files"]


def test_a_model_and_its_hf_export_score_the_same(runner, small_model, sample, tmp_path):
    pytest.importorskip("tokenizers")
    held_out = tmp_path / "held_out.txt"
    text = sample[300_000:400_000]
    assert "\n\n" in text
    held_out.write_text(text, encoding="utf-8")
    tok = Tokenizer(small_model)
    export = export_hf(tok, tmp_path / "small.json")
    out = tmp_path / "compression.json"
    result = runner.invoke(app, ["eval", "compression", str(held_out), "-m", str(small_model), "-m", str(export),
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["tokenizers"]
    assert [r["kind"] for r in rows] == ["bytepiece", "hf"]
    ours, theirs = (r["files"]["held_out.txt"] for r in rows)
    assert ours == theirs
    assert ours["tokens"] == len(tok.encode(text))  # the documents' tokens are the whole text's
