"""The HF export in ``transformers``: special tokens in their roles (pad, bos, eos, unk and the
tokenizer's own), from a lone ``tokenizer.json`` (``load_transformers``) and from a directory
export (``AutoTokenizer``)."""

from __future__ import annotations

import json

import pytest

from bytepiece import Tokenizer
from bytepiece.errors import InputError
from bytepiece.interop.hf import build_hf_json, export_hf, special_token_roles
from bytepiece_cli.app import app

SPECIALS = ["<|im_start|>", "<|im_end|>"]
TEXTS = ["abcd 中文 ab", "", "<bos>abc<eos> <pad>", "<|im_start|>cd<|im_end|>\n\nab", "  cd  "]
STYLES = ["byte_level", "byte_fallback"]


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return Tokenizer(tiny_tokenizer.model, special_tokens=SPECIALS)


@pytest.mark.parametrize("style", STYLES)
def test_roles_of_an_export(tok, style):
    roles = special_token_roles(build_hf_json(tok, style=style))
    expected = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "additional_special_tokens": SPECIALS}
    if style == "byte_fallback":
        expected["unk_token"] = "<unk>"
    assert roles == expected


def test_roles_refuse_a_file_bytepiece_did_not_write():
    with pytest.raises(InputError, match="not an HF tokenizer.json written by bytepiece"):
        special_token_roles({"added_tokens": [{"id": 5, "content": "<s>", "special": True}], "model": {}})
    with pytest.raises(InputError, match="not an HF tokenizer.json written by bytepiece"):
        special_token_roles({"model": {}})


def _check_fast(fast, tok: Tokenizer, *, unk: str | None) -> None:
    assert (fast.pad_token, fast.bos_token, fast.eos_token, fast.unk_token) == ("<pad>", "<bos>", "<eos>", unk)
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id) == (tok.pad_id, tok.bos_id, tok.eos_id)
    assert set(SPECIALS) <= set(fast.all_special_tokens)
    assert [fast.convert_tokens_to_ids(t) for t in SPECIALS] == [tok.piece_to_id(t) for t in SPECIALS]
    for text in TEXTS:  # special-token strings in text are text, as in bytepiece
        assert fast(text)["input_ids"] == tok.encode(text), text
    batch = fast(["ab", "abcd abcd"], padding=True)["input_ids"]
    assert batch[0][len(tok.encode("ab")):] == [tok.pad_id] * (len(batch[1]) - len(tok.encode("ab")))
    assert fast.decode(tok.encode("ab cd", add_bos=True, add_eos=True), skip_special_tokens=True) == "ab cd"


@pytest.mark.parametrize("style", STYLES)
def test_load_transformers_gives_a_lone_file_its_roles(tmp_path, tok, style):
    pytest.importorskip("transformers")
    from bytepiece.interop.check import load_transformers

    path = export_hf(tok, tmp_path / "tok.json", style=style)
    _check_fast(load_transformers(path), tok, unk="<unk>" if style == "byte_fallback" else None)
    directory = tmp_path / "hf"
    export_hf(tok, directory, style=style)
    _check_fast(load_transformers(directory), tok, unk="<unk>" if style == "byte_fallback" else None)


@pytest.mark.parametrize("style", STYLES)
def test_directory_export_gives_autotokenizer_every_role(tmp_path, tok, style):
    """The config names the tokenizer's own special tokens, and only a real unknown token as
    ``unk_token`` (the first of the tokenizer's special tokens was taken for it)."""
    transformers = pytest.importorskip("transformers")
    directory = tmp_path / "hf"
    export_hf(tok, directory, style=style)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    assert config["additional_special_tokens"] == SPECIALS
    assert json.loads((directory / "special_tokens_map.json").read_text())["additional_special_tokens"] == SPECIALS
    fast = transformers.AutoTokenizer.from_pretrained(str(directory))
    _check_fast(fast, tok, unk="<unk>" if style == "byte_fallback" else None)


def test_load_transformers_names_what_is_wrong(tmp_path):
    pytest.importorskip("transformers")
    from bytepiece.interop.check import load_transformers

    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(InputError, match="is not a tokenizer.json"):
        load_transformers(bad)


def test_cli_export_says_how_transformers_loads_each_form(runner, tiny_model_file, tmp_path):
    result = runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", str(tmp_path / "tok.json")])
    assert result.exit_code == 0, result.output
    assert "load_transformers" in result.stdout
    result = runner.invoke(app, ["export", str(tiny_model_file), "--to", "hf", "-o", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    assert "AutoTokenizer.from_pretrained" in result.stdout
