"""``bytepiece eval`` in a terminal: it says when a trained vocabulary came out smaller than
asked (the tables show the size a tokenizer has, not the size in its name), and its tables are
split to fit the terminal instead of cutting numbers and names."""

from __future__ import annotations

from typer.testing import CliRunner

from bytepiece.evaluation.report import vocabulary_notes
from bytepiece_cli.app import app
from bytepiece_data import SAMPLE_CORPUS, data_file


def test_vocabulary_notes_name_every_shortfall():
    res = {"tokenizers": [
        {"name": "bnlm-96000", "requested_vocab_size": 96000, "vocab_size": 39196,
         "notices": ["vocabulary size 96000 was asked for, but the corpus only supports 39196"]},
        {"name": "bnlm-8000", "requested_vocab_size": 8000, "vocab_size": 8000, "notices": []},
        {"name": "bnlm-32000", "requested_vocab_size": 32000, "vocab_size": 31998, "notices": []},
        {"name": "published", "vocab_size": 80000},
    ]}
    notes = vocabulary_notes(res)
    assert len(notes) == 2
    assert notes[0].startswith("bnlm-96000: asked for a vocabulary of 96,000, got 39,196 (vocabulary size 96000")
    assert notes[1] == "bnlm-32000: asked for a vocabulary of 32,000, got 31,998 (redundant pieces were pruned)"


def test_cli_says_when_a_vocabulary_came_out_smaller(tmp_path):
    lines = data_file(SAMPLE_CORPUS).read_text(encoding="utf-8").splitlines()
    train, held = tmp_path / "train.txt", tmp_path / "held.txt"
    train.write_text("\n".join(lines[:1500]) + "\n", encoding="utf-8")
    held.write_text("\n".join(lines[3000:3400]) + "\n", encoding="utf-8")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", "run", "--train", str(train), "-H", str(held), "--cuts", "5", "--alphas",
                                   "0.5", "--heldout-bytes", "2000", "-v", "60000", "-v", "400", "--json", str(out)],
                             env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    notes = [line for line in res.stderr.splitlines()
             if line.startswith("note: bnlm-60000: asked for a vocabulary of 60,000, got ")]
    assert len(notes) == 1 and "corpus only supports" in notes[0]

    narrow = CliRunner().invoke(app, ["eval", "report", str(out)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.stdout and max(map(len, narrow.stdout.splitlines())) <= 80
    assert "healing-d1" in narrow.stdout and "bnlm-60000" in narrow.stdout
