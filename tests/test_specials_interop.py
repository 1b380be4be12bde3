"""Special tokens in the HF and sentencepiece exports (loaded by the real libraries) and back."""

from __future__ import annotations

import pytest

from bytepiece import InputError, Tokenizer
from bytepiece.interop.hf import export_hf, import_hf
from bytepiece.interop.sentencepiece import export_sentencepiece, import_sentencepiece, sentencepiece_id_map

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|中文|>"]
TEXTS = ["<|im_start|>user\nhello there<|im_end|>", "no special tokens here", "<|中文|><|im_end|><|im_start|>",
         "almost <|im_start| but not", "中文<|中文|>中文\n\n"]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer("data/default.model", special_tokens=SPECIALS)


@pytest.mark.parametrize("style", ["byte_level", "byte_fallback"])
def test_hf_matches_special_tokens_like_bytepiece(tmp_path, tok, style):
    pytest.importorskip("tokenizers")
    from bytepiece.interop.check import load_hf

    path = export_hf(tok, tmp_path / "tokenizer.json", style=style)
    hf = load_hf(path, text_specials=False)
    for text in TEXTS:
        assert hf.encode(text).ids == tok.encode(text, allowed_special="all"), text
    assert [hf.token_to_id(t) for t in SPECIALS] == [tok.piece_to_id(t) for t in SPECIALS]
    back = import_hf(path)
    assert back.special_tokens == tuple(SPECIALS)
    assert back.pieces == tok.model.pieces


@pytest.mark.parametrize("style", ["byte_level", "byte_fallback"])
def test_sentencepiece_user_defined_symbols(tmp_path, tok, style):
    pytest.importorskip("sentencepiece")
    from bytepiece.interop.check import load_sentencepiece

    path = export_sentencepiece(tok, tmp_path / "sp.model", style=style)
    sp = load_sentencepiece(path)
    for text in TEXTS[:3]:
        assert sp.encode(text) == tok.encode(text, allowed_special="all"), text
    back = import_sentencepiece(path)
    assert back.special_tokens == tuple(SPECIALS)
    assert back.pieces == tok.model.pieces and (back.counts == tok.model.counts).all()
    id_map = sentencepiece_id_map(path, back)
    assert id_map[tok.model.vocab_size : tok.vocab_size].tolist() == [tok.piece_to_id(t) for t in SPECIALS]


def test_sentencepiece_refuses_a_special_token_that_is_a_piece(tmp_path):
    clash = Tokenizer("data/default.model", special_tokens=["the"])
    with pytest.raises(InputError, match="cannot hold one string twice"):
        export_sentencepiece(clash, tmp_path / "x.model")


def test_cli_export_special_token(runner, tmp_path, tiny_model_file):
    from bytepiece_cli.app import app

    out = tmp_path / "tok.json"
    result = runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", str(out),
                                 "--special-token", "<s>", "--special-token", "</s>"])
    assert result.exit_code == 0, result.output
    assert import_hf(out).special_tokens == ("<s>", "</s>")
